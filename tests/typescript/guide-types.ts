// The ```ts block of livechat-api-guide.id.md, verbatim except that every type is exported.
export type Rfc3339String = string;

export type Pagination = {
  next_cursor?: string;
  prev_cursor?: string;
  has_next: boolean;
  has_prev: boolean;
  limit: number;
};

export type Meta = {
  request_id: string;
  timestamp: Rfc3339String;
  pagination?: Pagination;
};

export type APIResponse<T> = {
  success: boolean;
  message: string;
  data: T | null;
  meta: Meta;
  errors: Record<string, string[]> | null;
};

export type ChatSession = {
  id: string;
  tenant_id: number;
  agent_id?: number;
  status: 'OPEN' | 'CLOSED';
  created_at: Rfc3339String;
  updated_at: Rfc3339String;
};

export type ChatMessage = {
  id: string;
  session_id: string;
  sender_id: number;
  message: string;
  created_at: Rfc3339String;
};

export type StartSessionRequest = {
  agent_id?: number;
};

export type SendMessageRequest = {
  message: string;
};

export type ChatSessionResponse = APIResponse<ChatSession>;
export type ChatMessageResponse = APIResponse<ChatMessage>;
export type ChatMessageListResponse = APIResponse<ChatMessage[]>;
