/**
 * Real services for the tests: the embed service (MiniLM preloaded) and the store, started from the
 * project's Python environment on ephemeral ports, and a local OpenAI-compatible HTTP server (POST
 * /v1/embeddings: a deterministic vector per text) that the `openai` function is pointed at. The key the
 * embed service sends it is its secret `$var:openai_key`, never in the client.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PACKAGE_ROOT = path.resolve(HERE, "..", "..");
export const PYTHON = process.env.VECTORLANE_PYTHON ?? path.resolve(PACKAGE_ROOT, "..", ".venv", "bin", "python");
export const OPENAI_KEY = "sk-typescript-test";
export const OPENAI_DIMS = 16;

/** A deterministic unit vector per text (sha256-seeded), as the Python tests' OpenAI server gives. */
export function textVector(text: string, dims = OPENAI_DIMS): number[] {
  const out: number[] = [];
  let block = createHash("sha256").update(text).digest();
  while (out.length < dims) {
    for (let i = 0; i + 4 <= block.length && out.length < dims; i += 4) out.push(block.readInt32LE(i) / 2 ** 31);
    block = createHash("sha256").update(block).digest();
  }
  const norm = Math.hypot(...out);
  return out.map((v) => v / norm);
}

export interface OpenAIServer {
  url: string;
  requests: { authorization: string; input: string[] }[];
  close(): Promise<void>;
}

export async function openaiServer(): Promise<OpenAIServer> {
  const requests: OpenAIServer["requests"] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const parsed = JSON.parse(body || "{}");
      const input: string[] = Array.isArray(parsed.input) ? parsed.input : [parsed.input];
      requests.push({ authorization: String(req.headers.authorization ?? ""), input });
      const data = input.map((text, index) => ({ object: "embedding", index, embedding: textVector(text, parsed.dimensions ?? OPENAI_DIMS) }));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", model: parsed.model, data, usage: { prompt_tokens: 1, total_tokens: 1 } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v1`, requests, close: () => new Promise((r) => server.close(() => r())) };
}

function started(child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 240 s:\n${seen}`)), 240_000);
    const look = (chunk: Buffer): void => {
      seen += chunk.toString();
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match && (what !== "embed service" || /health SERVING/.test(seen))) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", look);
    child.stderr?.on("data", look);
    child.once("exit", (code) => reject(new Error(`${what} exited (${code}):\n${seen}`)));
  });
}

export interface Services {
  storeUri: string;
  storePort: number;
  embedPort: number;
  openai: OpenAIServer;
  stop(): Promise<void>;
}

export async function startServices(): Promise<Services> {
  const openai = await openaiServer();
  const dataDir = mkdtempSync(path.join(tmpdir(), "vectorlane-ts-"));
  const env = { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1", TOKENIZERS_PARALLELISM: "false",
    VECTORLANE_SECRET_OPENAI_KEY: OPENAI_KEY };
  const embed = spawn(PYTHON, ["-m", "embed_service", "--port", "0", "--metrics-port", "0", "--preload", "sentence-transformers",
    "--secret-allowed-hosts", "http://127.0.0.1:*", "--endpoint-allowed-hosts", "http://127.0.0.1:*"],
  { cwd: path.resolve(PACKAGE_ROOT, ".."), env });
  const embedPort = await started(embed, "embed service");
  const store = spawn(PYTHON, ["-m", "store_service", "--port", "0", "--metrics-port", "0", "--data-dir", dataDir,
    "--embed-address", `127.0.0.1:${embedPort}`], { cwd: path.resolve(PACKAGE_ROOT, ".."), env });
  const storePort = await started(store, "store service");
  const stopOne = (child: ChildProcess): Promise<void> => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
  return {
    storeUri: `grpc://127.0.0.1:${storePort}`, storePort, embedPort, openai,
    async stop() {
      await stopOne(store);
      await stopOne(embed);
      await openai.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TlsStore {
  uri: string;
  ca: string;
  clientCert: string;
  clientKey: string;
  token: string;
  stop(): Promise<void>;
}

/** A second store serving mutual TLS (certificates from the Python tests' throwaway CA) and requiring a
 * bearer token, wired to the same embed service. */
export async function startTlsStore(embedPort: number): Promise<TlsStore> {
  const folder = mkdtempSync(path.join(tmpdir(), "vectorlane-ts-tls-"));
  const certs = await python(`
import json, pathlib
from tests.security_certs import make_certificates
c = make_certificates(pathlib.Path(${JSON.stringify(folder)}))
print(json.dumps({k: str(getattr(c, k)) for k in ("ca", "server_cert", "server_key", "client_cert", "client_key")}))`) as
    Record<string, string>;
  const token = "ts-test-token";
  const store = spawn(PYTHON, ["-m", "store_service", "--port", "0", "--metrics-port", "0", "--data-dir", path.join(folder, "data"),
    "--embed-address", `127.0.0.1:${embedPort}`, "--tls-cert", certs.server_cert, "--tls-key", certs.server_key,
    "--tls-client-ca", certs.ca, "--auth-tokens", token], { cwd: path.resolve(PACKAGE_ROOT, ".."), env: process.env });
  const port = await started(store, "TLS store");
  return {
    uri: `grpcs://127.0.0.1:${port}`, ca: certs.ca, clientCert: certs.client_cert, clientKey: certs.client_key, token,
    stop: () => new Promise((resolve) => {
      store.once("exit", () => { rmSync(folder, { recursive: true, force: true }); resolve(); });
      store.kill("SIGTERM");
    }),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a Python snippet with the project's environment; its stdout parsed as JSON. */
export function python(code: string, env: Record<string, string> = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ["-c", code], { cwd: path.resolve(PACKAGE_ROOT, ".."), env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`python failed (${code}): ${err}`))));
  });
}
