// Response types the guide uses but does not name, built from its own types.
import type { APIResponse, ChatSession } from "./guide-types";

export type ChatSessionListResponse = APIResponse<ChatSession[]>;
export type ErrorResponse = APIResponse<null>;
