// The WebSocket of an attached process (routes/exec.ts): its output out, the client's input and
// resizes in, its exit last. Framing: openapi.yaml's `ProcessStream`. Server to client: binary
// messages whose first byte is the stream (1 stdout — or the terminal —, 2 stderr) followed by the
// bytes; text messages are JSON: `{"type":"started","pid":N,"execId":"…"}` first,
// `{"type":"exit","exitCode":N,"exitedAt":"…"}` last (after every byte of output), then a normal
// close (1000); a failure after the upgrade is `{"type":"error","error":{"code","message"}}` and
// close 1011. Client to server: binary messages are input bytes; text messages are JSON
// `{"type":"resize","cols":N,"rows":N}` or `{"type":"eof"}` (no more input).
import type { Readable } from 'node:stream';
import type { WebSocket } from 'ws';

import { BerthError } from '../store/errors.js';
import type { AttachedProcess } from '../src/services/tasks.js';

/** The stream byte that starts each binary message from the server. */
const streamByte = { stdout: 1, stderr: 2 } as const;

/** Output the socket has not sent yet, past which reading the process's output pauses. */
const highWaterMark = 1 << 20;

/** Nobody listens any more: the input ends, the output is read and dropped (the process must not block writing). */
export function abandon(proc: AttachedProcess): void {
  proc.stdin?.end();
  proc.stdout.resume();
  proc.stderr?.resume();
}

/** Carries the process's I/O on the socket until it has exited and its output is sent. */
export async function serveProcess(socket: WebSocket, proc: AttachedProcess): Promise<void> {
  const sendText = (msg: object) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(msg));
  sendText({ type: 'started', pid: proc.pid, ...(proc.execId ? { execId: proc.execId } : {}) });
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      if (proc.stdin && !proc.stdin.writableEnded && !proc.stdin.write(data)) {
        socket.pause();
        proc.stdin.once('drain', () => socket.resume());
      }
      return;
    }
    let msg: { type?: string; cols?: unknown; rows?: unknown };
    try {
      msg = JSON.parse(String(data)) as typeof msg;
    } catch {
      return sendText({ type: 'error', error: { code: 'invalid_argument', message: 'a text message must be JSON: {"type":"resize",...} or {"type":"eof"}' } });
    }
    if (msg.type === 'resize' && isSize(msg.cols) && isSize(msg.rows)) proc.resize({ cols: msg.cols, rows: msg.rows });
    else if (msg.type === 'eof') proc.stdin?.end();
    else sendText({ type: 'error', error: { code: 'invalid_argument', message: `unknown control message ${JSON.stringify(String(data)).slice(0, 200)}` } });
  });
  socket.on('close', () => abandon(proc));
  socket.on('error', () => undefined);
  proc.stdin?.on('error', () => undefined); // the process closed its input: typing more is dropped
  try {
    await Promise.all([forward(socket, proc.stdout, streamByte.stdout), proc.stderr ? forward(socket, proc.stderr, streamByte.stderr) : undefined]);
    const exit = await proc.exited;
    sendText({ type: 'exit', exitCode: exit.exitCode, exitedAt: exit.exitedAt.toISOString() });
    socket.close(1000);
  } catch (err) {
    const code = err instanceof BerthError ? err.code : 'internal';
    sendText({ type: 'error', error: { code, message: (err as Error).message } });
    socket.close(1011);
  }
}

const isSize = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) <= 65535;

/** Sends a stream's chunks, each after the one before has gone out (that is the backpressure). */
async function forward(socket: WebSocket, stream: Readable, byte: number): Promise<void> {
  for await (const chunk of stream) {
    if (socket.readyState !== socket.OPEN) continue; // the client left: keep draining
    const frame = Buffer.concat([Buffer.of(byte), chunk as Buffer]);
    if (socket.bufferedAmount < highWaterMark) socket.send(frame);
    else await new Promise<void>((resolve) => socket.send(frame, () => resolve()));
  }
}
