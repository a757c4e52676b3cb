// The docs page, GET /docs: Swagger UI (@fastify/swagger-ui) rendering openapi.yaml with the
// server's own URL in `servers`, so that "Try it out" calls this server. Its scripts and styles
// are served by berth from the package (no CDN: the page works on a machine with no internet).
// When the API has a token (auth_token_file), the page and its assets stay open — they hold
// nothing of the server's — while the document (/docs/json) and every call need the token: a
// browser cannot send an Authorization header with a page load, so a page behind the token could
// not be opened at all. The page asks for the token instead (below), keeps it in the tab's
// sessionStorage, and hands it to Swagger UI's Authorize (the document's `bearerAuth` scheme).
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { loadOpenApi, requestOrigin, servedDocument } from '../openapi.js';

export async function registerDocs(app: FastifyInstance): Promise<void> {
  // In a scope of its own: the plugins' decorators and routes stay out of the API's.
  await app.register(async (scope) => {
    await scope.register(swagger, { mode: 'static', specification: { document: loadOpenApi() as never } });
    await scope.register(swaggerUi, {
      routePrefix: '/docs',
      // The document as /openapi.json serves it (the page fetches it from /docs/json).
      transformSpecification: (_doc, req) => servedDocument(requestOrigin(req, app.listeningOrigin)),
      transformSpecificationClone: false,
      // Its script runs after @fastify/swagger-ui's initializer and takes its place (window.onload).
      theme: { js: [{ filename: 'berth-docs.js', content: initializer }] },
    });
  });
}

/**
 * The page's initializer: loads the document, with the token the tab holds if any; on a 401 asks
 * for the token (a password field) and tries again; then starts Swagger UI with the token
 * authorized, so that "Try it out" sends it. Plain ES2017: it runs in the browser as it is.
 */
const initializer = `'use strict';
window.onload = function () {
  const storageKey = 'berth-api-token';
  const here = window.location.href.split('#', 1)[0];
  const specUrl = new URL('json', here.endsWith('/') ? here : here + '/').href;
  const root = document.getElementById('swagger-ui');
  const stored = () => { try { return sessionStorage.getItem(storageKey) || ''; } catch (e) { return ''; } };
  const store = (token) => { try { if (token) sessionStorage.setItem(storageKey, token); else sessionStorage.removeItem(storageKey); } catch (e) {} };
  const probe = (token) =>
    fetch(specUrl, { headers: token ? { authorization: 'Bearer ' + token } : {} }).then((res) => res.status, () => 0);

  function render(token) {
    root.replaceChildren();
    const ui = SwaggerUIBundle({
      dom_id: '#swagger-ui',
      url: specUrl,
      deepLinking: true,
      displayOperationId: true,
      tryItOutEnabled: false,
      validatorUrl: null, // no badge fetched from validator.swagger.io
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: 'StandaloneLayout',
      // The document itself needs the token; the operations get it from Authorize (below).
      requestInterceptor: (req) => {
        if (token && (req.loadSpec || req.url === specUrl)) req.headers.Authorization = 'Bearer ' + token;
        return req;
      },
      onComplete: () => { if (token) ui.preauthorizeApiKey('bearerAuth', token); },
    });
    window.ui = ui;
  }

  function ask(message) {
    const form = document.createElement('form');
    form.id = 'berth-token-form';
    form.style.cssText = 'max-width:640px;margin:60px auto;font-family:sans-serif;color:#3b4151';
    const title = document.createElement('h2');
    title.textContent = 'berth API';
    const text = document.createElement('p');
    text.id = 'berth-token-message';
    text.textContent = message;
    const input = document.createElement('input');
    input.type = 'password';
    input.id = 'berth-token';
    input.autocomplete = 'off';
    input.placeholder = 'API token';
    input.style.cssText = 'width:70%;padding:8px;margin-right:8px';
    const button = document.createElement('button');
    button.type = 'submit';
    button.id = 'berth-token-submit';
    button.textContent = 'Authorize';
    button.style.cssText = 'padding:8px 16px';
    form.append(title, text, input, button);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const token = input.value.trim();
      probe(token).then((status) => {
        if (status === 401) {
          text.textContent = 'That token was refused. ' + message;
          input.select();
          return;
        }
        store(token);
        render(token);
      });
    });
    root.replaceChildren(form);
    input.focus();
  }

  const token = stored();
  probe(token).then((status) => {
    if (status !== 401) return render(token);
    store('');
    ask('This berth server requires its API token (the server\\'s auth_token_file) for its document and ' +
      'every call but /healthz. It is kept in this tab only.');
  });
};
`;
