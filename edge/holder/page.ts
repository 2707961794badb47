// The holder's page: static HTML, CSS and one script (no inline script: the CSP allows 'self' only).
// The session token reaches the page once, in a <meta> of the HTML, which no other origin can read.
import { HOLDER_MESSAGES, type Language } from './messages.ts';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function holderHtml(opts: { token: string; language: Language }): string {
  const m = HOLDER_MESSAGES[opts.language];
  return `<!doctype html>
<html lang="${opts.language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="mykey-holder-token" content="${esc(opts.token)}">
<title>${esc(m.title)}</title>
<link rel="stylesheet" href="/holder.css">
<script src="/holder.js" defer></script>
</head>
<body>
<header><h1 id="title" data-t="title">${esc(m.title)}</h1>
<nav><button type="button" data-set-lang="ja" lang="ja">日本語</button><button type="button" data-set-lang="en" lang="en">English</button></nav></header>
<main id="main" data-step="idle">
<p id="lead" data-t="lead">${esc(m.lead)}</p>
<p id="reader" role="status" data-state="unknown"></p>
<div id="ops">
<button type="button" data-op="register" data-t="op_register"></button>
<button type="button" data-op="status" data-t="op_status"></button>
<button type="button" data-op="change_id" data-t="op_change_id"></button>
<button type="button" data-op="invalidate" data-t="op_invalidate"></button>
<button type="button" data-op="carry_over" data-t="op_carry_over"></button>
</div>
<form id="form" autocomplete="off" hidden>
<p id="ask"></p>
<label id="new-id-row" hidden><span data-t="new_id_label"></span> <input id="new-id" name="mykeyId" maxlength="16" autocapitalize="characters" spellcheck="false"></label>
<label><span data-t="pin_label"></span> <input id="pin" name="pin" type="password" inputmode="numeric" pattern="[0-9]{4}" maxlength="4" autocomplete="off"></label>
<button id="go" type="submit" data-t="go"></button> <button id="cancel" type="button" data-t="cancel"></button>
</form>
<p id="message" role="alert" data-code=""></p>
<section id="result" hidden>
<p><span data-t="mykey_id"></span>: <strong id="mykey-id"></strong> <span data-t="status"></span>: <span id="status"></span></p>
<h2 data-t="links"></h2><ul id="links"></ul>
<h2 data-t="certs"></h2><ul id="certs"></ul>
</section>
</main>
</body>
</html>`;
}

export const HOLDER_CSS = `
body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
header{display:flex;justify-content:space-between;align-items:center;padding:1rem 1.5rem;background:#0b5cad;color:#fff}
header h1{font-size:1.3rem;margin:0} nav button{margin-left:.5rem}
main{max-width:44rem;margin:1.5rem auto;padding:0 1rem}
#ops button{margin:.25rem .25rem .25rem 0;padding:.6rem .9rem;font-size:1rem}
#ops button[aria-pressed=true]{outline:3px solid #0b5cad}
form{margin:1rem 0;padding:1rem;background:#fff;border-radius:.5rem}
label{display:block;margin:.5rem 0} input{font-size:1.2rem;padding:.3rem}
#message{min-height:1.5rem;font-weight:600} #message[data-kind=error]{color:#b00020} #message[data-kind=ok]{color:#0a6b2d}
#reader[data-state=problem]{color:#b00020}
section{background:#fff;padding:1rem;border-radius:.5rem} h2{font-size:1rem}
`;

/** The page's script, with both languages' words inlined. */
export function holderJs(): string {
  return `'use strict';
(() => {
const M = ${JSON.stringify(HOLDER_MESSAGES)};
const TOKEN = document.querySelector('meta[name="mykey-holder-token"]').content;
let lang = document.documentElement.lang === 'en' ? 'en' : 'ja';
let op = null; let serviceId = null; let unlinkLabel = ''; let carryStep = null; let lastView = null; let lastMsg = null; let working = false;
const $ = (id) => document.getElementById(id);
const t = (k, v) => (M[lang][k] || k).replace('{n}', v && v.n !== undefined ? String(v.n) : '').replace('{s}', v && v.s ? v.s : '').replace('{code}', v && v.code ? v.code : '');
function api(path, body) {
  return fetch(path, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json', 'x-mykey-holder-token': TOKEN }, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
    .then((r) => r.json().then((j) => ({ status: r.status, body: j })), () => ({ status: 0, body: { code: 'companion_unreachable' } }));
}
function say(kind, key, vars) { lastMsg = { kind, key, vars }; paintMessage(); }
function paintMessage() {
  const el = $('message');
  if (!lastMsg) { el.textContent = ''; el.dataset.code = ''; el.dataset.kind = ''; return; }
  el.dataset.kind = lastMsg.kind; el.dataset.code = lastMsg.key;
  el.textContent = M[lang][lastMsg.key] ? t(lastMsg.key, lastMsg.vars) : t('unknown_error', { code: lastMsg.key });
}
function paintStatic() {
  document.documentElement.lang = lang;
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  paintAsk(); paintMessage(); paintView();
}
function paintAsk() {
  const ask = $('ask');
  if (op === 'carry_over') ask.textContent = t(carryStep === 'new' ? 'carry_new' : 'carry_previous');
  else if (op === 'unlink') ask.textContent = t('unlink_ask', { s: unlinkLabel });
  else ask.textContent = op ? t('op_' + op) : '';
}
function paintView() {
  const v = lastView; $('result').hidden = !v; if (!v) return;
  $('mykey-id').textContent = v.mykeyId.slice(0, 4) + '-' + v.mykeyId.slice(4);
  $('status').textContent = t('status_' + v.status);
  const links = $('links'); links.replaceChildren();
  if (!v.links || v.links.length === 0) { const li = document.createElement('li'); li.textContent = t('no_links'); links.append(li); }
  else for (const l of v.links) {
    const li = document.createElement('li'); li.dataset.service = l.serviceId;
    li.append(l.serviceName + ' (' + l.serviceUserId + ') ');
    const b = document.createElement('button'); b.type = 'button'; b.textContent = t('unlink'); b.dataset.unlink = l.serviceId;
    b.addEventListener('click', () => choose('unlink', l.serviceName, l.serviceId)); li.append(b); links.append(li);
  }
  const certs = $('certs'); certs.replaceChildren();
  for (const c of v.certificates || []) {
    const li = document.createElement('li'); li.dataset.state = c.state;
    li.textContent = c.serial.slice(0, 12) + '… ' + t('cert_' + c.state) + ' ' + c.boundAt.slice(0, 10) + (c.unboundAt ? ' – ' + c.unboundAt.slice(0, 10) : '');
    certs.append(li);
  }
}
function choose(newOp, label, sid) {
  if (working) return;
  op = newOp; serviceId = sid || null; carryStep = newOp === 'carry_over' ? 'previous' : null;
  for (const b of document.querySelectorAll('[data-op]')) b.setAttribute('aria-pressed', String(b.dataset.op === op));
  $('form').hidden = false; $('new-id-row').hidden = op !== 'change_id';
  $('main').dataset.step = op === 'carry_over' ? 'carry_previous' : 'ask';
  unlinkLabel = label || '';
  lastMsg = null; paintMessage(); paintAsk(); $('pin').value = ''; $('pin').focus();
}
function reset() {
  op = null; carryStep = null; serviceId = null; $('form').hidden = true; $('main').dataset.step = 'idle'; $('pin').value = '';
  for (const b of document.querySelectorAll('[data-op]')) b.setAttribute('aria-pressed', 'false');
}
async function go(ev) {
  ev.preventDefault();
  if (!op || working) return;
  if (op === 'invalidate' && !confirm(t('confirm_invalidate'))) return;
  const pin = $('pin').value; $('pin').value = '';
  const body = { op: op === 'carry_over' ? 'carry_over_' + carryStep : op, pin };
  if (op === 'change_id') body.mykeyId = $('new-id').value;
  if (op === 'unlink') body.serviceId = serviceId;
  working = true; $('main').dataset.busy = 'true'; say('info', 'working');
  const r = await api('/api/flow', body);
  working = false; $('main').dataset.busy = 'false';
  if (r.status === 200 && r.body.step === 'carry_over_new_card') { carryStep = 'new'; $('main').dataset.step = 'carry_new'; lastMsg = null; paintMessage(); paintAsk(); $('pin').focus(); return; }
  if (r.status === 200) {
    const v = r.body.view; const doneOp = op;
    if (v.certificates) lastView = v; else lastView = Object.assign({}, lastView && lastView.mykeyId === v.mykeyId ? lastView : { links: [], certificates: [] }, v);
    reset(); $('main').dataset.step = 'done'; $('main').dataset.done = doneOp;
    say('ok', doneOp === 'register' && v.created === false ? 'done_register_existing' : 'done_' + doneOp);
    paintView(); return;
  }
  const code = r.body.code || 'unknown_error';
  if (code === 'holder_step_missing') { carryStep = 'previous'; $('main').dataset.step = 'carry_previous'; paintAsk(); }
  say('error', code, { n: r.body.triesLeft });
}
async function poll() {
  const r = await api('/api/state');
  const el = $('reader');
  if (r.status === 200) {
    const s = r.body; const key = s.busy ? 'reader_working' : s.problem ? (s.problem === 'holder_no_card' ? 'reader_no_card' : s.problem) : 'reader_ok';
    el.dataset.state = s.problem && s.problem !== 'holder_no_card' ? 'problem' : s.card ? 'card' : 'empty'; el.dataset.key = key; el.textContent = t(key);
  }
  setTimeout(poll, 500);
}
for (const b of document.querySelectorAll('[data-op]')) b.addEventListener('click', () => choose(b.dataset.op));
for (const b of document.querySelectorAll('[data-set-lang]')) b.addEventListener('click', () => { lang = b.dataset.setLang; paintStatic(); const k = $('reader').dataset.key; if (k) $('reader').textContent = t(k); });
$('form').addEventListener('submit', go);
$('cancel').addEventListener('click', () => { api('/api/cancel', {}); reset(); lastMsg = null; paintMessage(); });
paintStatic(); poll();
})();
`;
}
