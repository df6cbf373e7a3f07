/**
 * hotplex permission gate — a pi extension (pi --mode rpc -e <this file>).
 *
 * pi runs every tool without asking. hotplex loads this extension into each
 * pi worker so that the tools named in HOTPLEX_PI_GATED_TOOLS (comma list,
 * from `workers.pi.gated_tools`; "*" = every tool; empty = none; unset =
 * "bash,write,edit") are confirmed by the AEP client first.
 *
 * Protocol (pi's extension UI sub-protocol, docs/rpc.md "Extension UI"):
 * before a gated tool runs, pi writes on stdout
 *   {"type":"extension_ui_request","id":"<uuid>","method":"confirm",
 *    "title":"hotplex.permission","message":"<JSON {toolName,toolCallId,input}>"}
 * and the gateway answers on stdin with
 *   {"type":"extension_ui_response","id":"<uuid>","confirmed":true|false}
 * or {"type":"extension_ui_response","id":"<uuid>","cancelled":true}.
 * Anything but `confirmed:true` blocks the call; the model sees the block
 * reason as the tool's (error) result.
 *
 * Fails closed: no UI, input that cannot be serialised, or an error inside
 * this handler (pi blocks a tool whose `tool_call` handler throws) all
 * block the call. The dialog is tied to the run's abort signal, so an
 * `abort` dismisses a pending question instead of waiting for the answer.
 *
 * The gateway embeds this file in its binary and writes it next to its data
 * (docs/agents.md "pi"); it is not meant to be edited in place.
 */
import type { ExtensionAPI } from "@mariozechner/pi-coding-agent";

/** Dialog title the gateway recognises as a permission question. */
const TITLE = "hotplex.permission";
/** Used when HOTPLEX_PI_GATED_TOOLS is not set at all. */
const DEFAULT_GATED = "bash,write,edit";

function gatedTools(): { all: boolean; names: Set<string> } {
	const raw = process.env.HOTPLEX_PI_GATED_TOOLS ?? DEFAULT_GATED;
	const names = new Set(
		raw
			.split(",")
			.map((s) => s.trim())
			.filter((s) => s.length > 0),
	);
	return { all: names.has("*"), names };
}

export default function hotplexPermissionGate(pi: ExtensionAPI) {
	const gated = gatedTools();

	pi.on("tool_call", async (event, ctx) => {
		if (!gated.all && !gated.names.has(event.toolName)) return undefined;
		if (!ctx.hasUI) {
			return { block: true, reason: "Permission required, but no client is attached to answer" };
		}
		let question: string;
		try {
			question = JSON.stringify({ toolName: event.toolName, toolCallId: event.toolCallId, input: event.input });
		} catch {
			return { block: true, reason: "Permission required, but the tool input cannot be shown to the client" };
		}
		const allowed = await ctx.ui.confirm(TITLE, question, { signal: ctx.signal });
		if (ctx.signal?.aborted) return { block: true, reason: "Aborted before the permission was answered" };
		if (allowed !== true) return { block: true, reason: "Permission denied by the user" };
		return undefined;
	});
}
