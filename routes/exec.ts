// Interactive processes over a WebSocket (RFC 6455): a container's task started attached
// (berth run -i/-t) and another process run in it (berth exec). The process is started before
// the upgrade, in the route's preHandler, so that a refusal (no such container, no running task,
// a bad command) is a plain HTTP answer; after the upgrade the socket carries the process's I/O.
// The server registers @fastify/websocket (server.ts) ahead of the token check, which so
// applies to the upgrade as to every route.
// The socket's messages: process-stream.ts (openapi.yaml's `ProcessStream`).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';

import { invalidArgument } from '../store/errors.js';
import { abandon, serveProcess } from './process-stream.js';
import { routeSchema } from '../src/openapi.js';
import type { AttachedProcess, TaskService, WindowSize } from '../src/services/tasks.js';
import { opContext } from './context.js';
import type { Route } from './route-types.js';

export const execRoutes: FastifyPluginAsync<{ tasks: TaskService }> = async (app, { tasks }) => {
  const started = new WeakMap<FastifyRequest, AttachedProcess>();

  /** The process of a request, started; if the upgrade never completes, its I/O is let go. */
  const hold = (req: FastifyRequest, proc: AttachedProcess) => {
    started.set(req, proc);
    proc.exited.catch(() => undefined); // awaited by serve(); never, if the upgrade fails
    req.raw.socket.once('close', () => {
      if (started.has(req)) abandon(proc);
    });
  };

  const attach = (socket: WebSocket, req: FastifyRequest) => {
    const proc = started.get(req);
    started.delete(req);
    if (proc) void serveProcess(socket, proc);
  };

  app.route<Route<'/v1/containers/{id}/task/exec', 'get'>>({
    method: 'GET',
    url: '/v1/containers/:id/task/exec',
    schema: routeSchema('get', '/v1/containers/{id}/task/exec'),
    preHandler: async (req) => {
      const q = req.query;
      if (!req.ws) {
        await tasks.running(opContext(req), req.params.id);
        notUpgraded();
      }
      hold(
        req,
        await tasks.exec(opContext(req), req.params.id, {
          args: q.arg,
          tty: q.tty ?? false,
          stdin: q.stdin ?? false,
          env: q.env,
          cwd: q.cwd || undefined,
          size: sizeOf(q.cols, q.rows),
        }),
      );
    },
    handler: async () => notUpgraded(),
    wsHandler: attach,
  });

  app.route<Route<'/v1/containers/{id}/task/attach', 'get'>>({
    method: 'GET',
    url: '/v1/containers/:id/task/attach',
    schema: routeSchema('get', '/v1/containers/{id}/task/attach'),
    preHandler: async (req) => {
      const q = req.query;
      if (!req.ws) {
        await tasks.checkCreate(opContext(req), req.params.id);
        notUpgraded();
      }
      hold(req, await tasks.createAttached(opContext(req), req.params.id, { stdin: q.stdin ?? false, size: sizeOf(q.cols, q.rows) }));
    },
    handler: async () => notUpgraded(),
    wsHandler: attach,
  });
};

/** A plain GET (no upgrade) is refused once the request's other errors are answered; nothing was started. */
function notUpgraded(): never {
  throw invalidArgument('this endpoint is a WebSocket: send a GET with Connection: Upgrade and Upgrade: websocket (RFC 6455)');
}

function sizeOf(cols: number | undefined, rows: number | undefined): WindowSize | undefined {
  return cols && rows ? { cols, rows } : undefined;
}
