// Drives the npm SDK `android-sms-gateway`, unchanged, against a live SMSGate server, and checks
// every answer against the SDK's own type declarations (its dist/index.d.ts turned into JSON
// Schema). Run by tests/compat/test_js_sdk.py, which pairs the phones, plays them, receives the
// webhooks and reads what this prints: one JSON document on stdout.
//
//   node check.mjs calls        every public method of the client once
//   node check.mjs state ID     getState(ID), after the phone reported
//   node check.mjs payloads     the webhook bodies on stdin, against WebHookPayload (tsc)
//
// Environment: SMSGATE_BASE (…/api/3rdparty/v1), SMSGATE_LOGIN, SMSGATE_PASSWORD, and for
// `calls` DEVICE_ID (a paired phone to keep), SPARE_DEVICE_ID (one to delete), HOOK_URL.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Ajv from "ajv";
import Client, { LimitPeriod, WebHookEventType } from "android-sms-gateway";
import ts from "typescript";
import * as TJS from "typescript-json-schema";

const require = createRequire(import.meta.url);
const declarations = join(
  dirname(require.resolve("android-sms-gateway/package.json")),
  "dist",
  "index.d.ts",
);
const program = TJS.getProgramFromFiles([declarations], { strictNullChecks: true });
const generator = TJS.buildGenerator(program, { required: true, strictNullChecks: true });
const ajv = new Ajv({ allErrors: true, strict: false });

const compiled = new Map();
function validator(type, array = false) {
  const key = `${type}${array ? "[]" : ""}`;
  if (!compiled.has(key)) {
    const { definitions, $schema, ...one } = generator.getSchemaForSymbol(type);
    compiled.set(key, ajv.compile(array
      ? { definitions, type: "array", items: one }
      : { definitions, ...one }));
  }
  return compiled.get(key);
}

const checks = [];
function check(name, ok, detail = undefined) {
  checks.push({ name, ok: Boolean(ok), ...(detail === undefined ? {} : { detail }) });
}
function typed(name, type, value, array = false) {
  const validate = validator(type, array);
  const ok = validate(value);
  check(`${name} matches ${array ? `${type}[]` : type}`, ok,
    ok ? undefined : { errors: validate.errors, value });
  return value;
}

async function call(method, url, body, headers) {
  const answer = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) {
    throw new Error(`${method} ${url} -> ${answer.status} ${text}`);
  }
  return text ? JSON.parse(text) : undefined;
}

// The SDK takes the HTTP client as a parameter: the plainest one, over Node's fetch.
const http = {
  get: (url, headers) => call("GET", url, undefined, headers),
  post: (url, body, headers) => call("POST", url, body, headers),
  put: (url, body, headers) => call("PUT", url, body, headers),
  patch: (url, body, headers) => call("PATCH", url, body, headers),
  delete: (url, headers) => call("DELETE", url, undefined, headers),
};

const env = process.env;
const client = new Client(env.SMSGATE_LOGIN, env.SMSGATE_PASSWORD, http, env.SMSGATE_BASE);

async function step(name, run) {
  try {
    return await run();
  } catch (error) {
    check(name, false, String(error));
    return undefined;
  }
}

async function calls() {
  const out = {};
  const health = await step("getHealth", () => client.getHealth());
  if (health) {
    typed("getHealth", "HealthResponse", health);
    check("getHealth says pass", health.status === "pass", health.status);
  }

  const devices = await step("getDevices", () => client.getDevices());
  if (devices) {
    typed("getDevices", "Device", devices, true);
    const ids = devices.map((d) => d.id).sort();
    check("getDevices lists the paired phones", JSON.stringify(ids) ===
      JSON.stringify([env.DEVICE_ID, env.SPARE_DEVICE_ID].sort()), ids);
  }

  const sent = await step("send", () => client.send({
    phoneNumbers: ["+5215555555555"],
    message: "Hola, tu cita es mañana a las 10:00",
    withDeliveryReport: true,
  }));
  if (sent) {
    typed("send", "MessageState", sent);
    check("send answers Pending", sent.state === "Pending", sent.state);
    out.messageId = sent.id;
  }

  // the SDK README's own example of a number kept without validation
  const kept = await step("send with skipPhoneValidation", () =>
    client.send({ phoneNumbers: ["+1234567890"], message: "kept as written" },
      { skipPhoneValidation: true }));
  if (kept) {
    typed("send with skipPhoneValidation", "MessageState", kept);
    check("skipPhoneValidation keeps the number",
      kept.recipients[0]?.phoneNumber === "+1234567890", kept.recipients);
  }

  if (out.messageId) {
    const state = await step("getState", () => client.getState(out.messageId));
    if (state) {
      typed("getState", "MessageState", state);
      check("getState finds the message by the id send gave", state.id === out.messageId);
    }
  }

  const hook = await step("registerWebhook", () => client.registerWebhook({
    url: env.HOOK_URL,
    event: WebHookEventType.SmsDelivered,
  }));
  if (hook) {
    typed("registerWebhook", "WebHook", hook);
    out.webhookId = hook.id;
  }
  const spare = await step("registerWebhook (a second, to delete)", () =>
    client.registerWebhook({ id: "to-delete", url: env.HOOK_URL, event: WebHookEventType.SmsSent }));
  const hooks = await step("getWebhooks", () => client.getWebhooks());
  if (hooks) {
    typed("getWebhooks", "WebHook", hooks, true);
    check("getWebhooks lists both", hooks.length === 2, hooks);
  }
  if (spare) {
    await step("deleteWebhook", () => client.deleteWebhook(spare.id));
    const left = await step("getWebhooks after deleteWebhook", () => client.getWebhooks());
    check("deleteWebhook removed it", left && left.every((h) => h.id !== "to-delete"), left);
  }

  const day = 24 * 3600 * 1000;
  const exported = await step("exportInbox", () => client.exportInbox({
    deviceId: env.DEVICE_ID,
    since: new Date(Date.now() - day),
    until: new Date(),
  }));
  check("exportInbox answers nothing", exported === undefined, exported);

  const logs = await step("getLogs", () => client.getLogs(new Date(Date.now() - day), new Date()));
  if (logs) {
    typed("getLogs", "LogEntry", logs, true);
    check("getLogs has entries", logs.length > 0, logs.length);
    check("getLogs ids are exact JavaScript numbers",
      logs.every((entry) => Number.isSafeInteger(entry.id)), logs.map((entry) => entry.id));
  }

  // the SDK's own settings types are camelCase; the answers are in the reference's snake_case
  await step("updateSettings", () => client.updateSettings({
    messages: { limitPeriod: LimitPeriod.PerDay, limitValue: 50 },
  }));
  const replaced = await step("getSettings", () => client.getSettings());
  if (replaced) {
    typed("getSettings", "DeviceSettings", replaced);
    const messages = replaced.messages || {};
    check("updateSettings applied", messages.limit_period === "PerDay" &&
      messages.limit_value === 50, replaced);
  }
  await step("patchSettings", () => client.patchSettings({
    messages: { sendIntervalMin: 2, sendIntervalMax: 9 },
  }));
  const patched = await step("getSettings after patchSettings", () => client.getSettings());
  if (patched) {
    const messages = patched.messages || {};
    check("patchSettings applied and kept the rest", messages.send_interval_min === 2 &&
      messages.send_interval_max === 9 && messages.limit_period === "PerDay", patched);
  }

  await step("deleteDevice", () => client.deleteDevice(env.SPARE_DEVICE_ID));
  const remaining = await step("getDevices after deleteDevice", () => client.getDevices());
  check("deleteDevice removed it",
    remaining && remaining.map((d) => d.id).join() === env.DEVICE_ID, remaining);
  return out;
}

// WebHookPayload is a union holding a `never`-valued type, which JSON Schema generators refuse:
// each delivered body is checked by the TypeScript compiler itself, assigned to the SDK's type.
const EVENT_MEMBERS = {
  "sms:received": "SmsReceived",
  "system:ping": "SystemPing",
  "sms:sent": "SmsSent",
  "sms:delivered": "SmsDelivered",
  "sms:failed": "SmsFailed",
};

function payloads(bodies) {
  const lines = ['import { WebHookEventType, type WebHookPayload } from "android-sms-gateway";'];
  bodies.forEach((body, index) => {
    const member = EVENT_MEMBERS[body.event];
    check(`webhook ${index}: ${body.event} is an event of the SDK`, member !== undefined);
    // through a variable, so the fields the app adds beyond the SDK's type are allowed
    lines.push(`const body${index} = { event: WebHookEventType.${member} as const, ` +
      `payload: ${JSON.stringify(body.payload)} };`);
    lines.push(`export const checked${index}: WebHookPayload = body${index};`);
  });
  const file = join(dirname(fileURLToPath(import.meta.url)), "payloads.generated.ts");
  writeFileSync(file, lines.join("\n") + "\n");
  const checker = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  });
  const problems = ts.getPreEmitDiagnostics(checker).map((d) =>
    ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  check(`${bodies.length} webhook bodies are WebHookPayload`, bodies.length > 0 &&
    problems.length === 0, problems.length ? { problems, source: lines } : undefined);
}

async function main() {
  const [phase, argument] = process.argv.slice(2);
  let out = {};
  if (phase === "calls") {
    out = await calls();
  } else if (phase === "state") {
    const state = await step("getState", () => client.getState(argument));
    if (state) {
      typed("getState", "MessageState", state);
      out.state = state.state;
      out.recipients = state.recipients;
    }
  } else if (phase === "payloads") {
    payloads(JSON.parse(readFileSync(0, "utf8")));
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  process.stdout.write(JSON.stringify({ ...out, checks }) + "\n");
}

await main();
