// The tenant widget: start a conversation (or pick up the tenant's open one),
// chat in real time, and see it closed, on any screen size.

import { Api, ApiError } from "./api";
import type { Session } from "./api";
import { connectionBadge, header, languagePicker } from "./chrome";
import { Conversation } from "./conversation";
import { h, setChildren, uid } from "./dom";
import { t } from "./i18n";
import { Realtime } from "./realtime";
import type { Frame } from "./realtime";
import type { Me } from "./token";

export class TenantWidget {
  readonly root: HTMLElement;
  private readonly rt: Realtime;
  private readonly body: HTMLElement;
  private readonly status: HTMLParagraphElement;
  private readonly agentState: HTMLSpanElement;
  private conversation: Conversation | null = null;

  constructor(
    private readonly me: Me,
    private readonly api: Api,
    private readonly tenant: number,
    rerender: () => void,
    signOut: () => void,
    switchTenant: HTMLElement | null,
  ) {
    this.rt = new Realtime(api, tenant);
    this.status = h("p", { class: "session-status", role: "status" });
    this.agentState = h("span", { class: "agent-state" });
    this.body = h("main", { class: "widget-body" });
    this.root = h(
      "div",
      { class: "app widget" },
      header(
        t("widgetTitle"),
        `${t("userN", { n: me.userId })} · ${t("tenantN", { n: tenant })}`,
        switchTenant,
        connectionBadge(this.rt),
        languagePicker(rerender),
        h("button", { type: "button", onclick: signOut }, t("signOut")),
      ),
      h("div", { class: "widget-status" }, this.status, this.agentState),
      this.body,
    );
    this.rt.onFrame((frame) => this.onFrame(frame));
  }

  async start(): Promise<void> {
    this.rt.start();
    try {
      const latest = await this.api.latestSession(this.tenant);
      const open = latest.items.find((s) => s.status === "OPEN");
      if (open) {
        await this.show(open);
        return;
      }
    } catch {
      // Fall through to the start button; starting reports its own errors.
    }
    this.showStart();
  }

  stop(): void {
    this.rt.pause();
    this.conversation?.destroy(false);
  }

  private onFrame(frame: Frame): void {
    if (frame.type !== "event" || frame.event !== "presence") return;
    const agent = this.conversation?.session.agent_id;
    if (agent !== undefined && frame.data.agent_id === agent) {
      this.agentState.textContent = frame.data.status === "online" ? t("agentOnline") : t("agentOffline");
      this.agentState.dataset.state = frame.data.status;
    }
  }

  private showStart(problem = ""): void {
    this.status.textContent = "";
    const button = h("button", { type: "button", class: "primary big", onclick: () => void this.open() }, t("startChat"));
    setChildren(
      this.body,
      h("div", { class: "intro" }, h("p", {}, t("widgetIntro")), button, problem ? h("p", { class: "problem", role: "alert" }, problem) : null),
    );
    button.focus();
  }

  /** Opens a session; if the tenant already has one open, resumes that one instead. */
  private async open(): Promise<void> {
    try {
      await this.show(await this.openSession());
    } catch (err) {
      const active = err instanceof ApiError && err.code === "session_already_active" ? err.errors?.session_id?.[0] : undefined;
      if (active) {
        try {
          await this.show(await this.api.session(this.tenant, active));
          return;
        } catch (again) {
          err = again;
        }
      }
      this.showStart(t("actionFailed", { reason: err instanceof ApiError ? err.describe() : t("errNetwork") }));
    }
  }

  /** Opens, trying again (a few times) while the server answers that the
   * tenant's sessions kept changing under the open (409 session_conflict). */
  private async openSession(): Promise<Session> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.api.openSession(this.tenant);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === "session_conflict") || attempt >= 3) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  private async show(session: Session): Promise<void> {
    this.conversation?.destroy(false);
    const restart = h("button", { type: "button", class: "primary", hidden: true, onclick: () => void this.open() }, t("startNew"));
    const conversation = new Conversation({
      api: this.api,
      rt: this.rt,
      me: this.me.userId,
      session,
      search: false,
      onSession: (s) => this.describe(s, restart),
    });
    this.conversation = conversation;
    setChildren(this.body, conversation.root, h("div", { class: "restart" }, restart));
    this.describe(session, restart);
    await conversation.start();
  }

  private describe(s: Session, restart: HTMLButtonElement): void {
    this.status.dataset.status = s.status;
    this.status.textContent =
      s.status === "CLOSED"
        ? t("sessionClosed")
        : s.agent_id === undefined
          ? t("waitingAgent")
          : t("sessionWith", { agent: t("agentN", { n: s.agent_id }) });
    restart.hidden = s.status !== "CLOSED";
    if (s.status === "CLOSED") this.agentState.textContent = "";
  }
}

/** A tenant chooser for tokens that name more than one tenant. */
export function tenantPicker(tenants: number[], current: number, onPick: (tenant: number) => void): HTMLElement | null {
  if (tenants.length < 2) return null;
  const id = uid("tenant");
  const select = h(
    "select",
    { id, onchange: () => onPick(Number(select.value)) },
    ...tenants.map((n) => h("option", { value: n, selected: n === current }, t("tenantN", { n }))),
  );
  return h("div", { class: "tenant-pick" }, h("label", { for: id, class: "visually-hidden" }, t("tenantLabel")), select);
}
