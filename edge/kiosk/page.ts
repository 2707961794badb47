// The counter tablet page: one HTML document, its stylesheet and script, served from the edge. The
// script follows the edge's Server-Sent Events (/events) and renders the current view in the chosen
// language with textContent only (nothing from the wire is ever parsed as HTML).
import { MESSAGES, type Language } from './messages.ts';

/** The HTML document; `lang` is the language until someone switches. */
export function kioskHtml(lang: Language): string {
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MyKey</title>
<link rel="stylesheet" href="/kiosk.css">
<script src="/kiosk.js" defer></script>
</head>
<body data-lang="${lang}">
<header>
  <div id="health" role="status" hidden></div>
  <nav>
    <button type="button" class="lang" data-set-lang="ja">日本語</button>
    <button type="button" class="lang" data-set-lang="en">English</button>
  </nav>
</header>
<main data-outcome="idle">
  <h1 id="title"></h1>
  <p id="label"></p>
  <p id="value"></p>
  <p id="sub"></p>
  <form id="form" hidden autocomplete="off">
    <label id="field-label" for="field"></label>
    <input id="field" name="field" autocomplete="off" spellcheck="false">
    <button type="submit" id="submit"></button>
  </form>
  <div id="pinpad" hidden>
    <div id="pin-dots" aria-live="polite"><span></span><span></span><span></span><span></span></div>
    <div class="keys">
      <button type="button" data-digit="1">1</button><button type="button" data-digit="2">2</button><button type="button" data-digit="3">3</button>
      <button type="button" data-digit="4">4</button><button type="button" data-digit="5">5</button><button type="button" data-digit="6">6</button>
      <button type="button" data-digit="7">7</button><button type="button" data-digit="8">8</button><button type="button" data-digit="9">9</button>
      <button type="button" id="pin-back" aria-label="back">⌫</button><button type="button" data-digit="0">0</button><button type="button" id="pin-clear" aria-label="clear">C</button>
    </div>
  </div>
  <div class="actions">
    <button type="button" id="register" hidden></button>
    <button type="button" id="cancel" hidden></button>
  </div>
</main>
</body>
</html>
`;
}

export const KIOSK_CSS = `
:root { color-scheme: light; font-family: "Noto Sans JP", "Hiragino Sans", "Yu Gothic", system-ui, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; background: #f6f7f9; color: #111; }
header { display: flex; justify-content: space-between; align-items: center; padding: 1rem 1.5rem; }
#health { font-size: 1.6rem; font-weight: 700; padding: .4rem 1rem; border-radius: .5rem; background: #ffe08a; }
#health[data-health="stale"], #health[data-health="clock_unsure"] { background: #ffb3b3; }
nav { margin-left: auto; display: flex; gap: .5rem; }
button { font: inherit; font-size: 1.6rem; padding: .6rem 1.4rem; border-radius: .6rem; border: 2px solid #333; background: #fff; cursor: pointer; }
button.lang[aria-pressed="true"] { background: #111; color: #fff; }
main { flex: 1; display: flex; flex-direction: column; justify-content: center; align-items: center; text-align: center; padding: 2rem; gap: 1rem; }
h1 { font-size: 4rem; line-height: 1.25; margin: 0; }
#label { font-size: 2rem; margin: 0; color: #444; }
#value { font-size: 5.5rem; font-weight: 800; letter-spacing: .05em; margin: 0; font-variant-numeric: tabular-nums; }
#sub { font-size: 2rem; margin: 0; max-width: 40ch; }
main[data-outcome="linked"] { background: #e3f6e8; }
main[data-outcome="not_linked"] { background: #fff4dc; }
main[data-outcome="refused"] { background: #fde4e4; }
main[data-outcome="degraded"] { background: #fff0c2; }
main[data-outcome="reader"] { background: #fde4e4; }
form { display: flex; flex-direction: column; gap: .8rem; align-items: center; }
label { font-size: 2rem; }
input { font-size: 3rem; padding: .5rem 1rem; width: 14em; max-width: 90vw; text-align: center; border: 3px solid #333; border-radius: .6rem; }
.actions { display: flex; gap: 1rem; }
main[data-outcome="pin"] { background: #e8eefc; }
#pinpad { display: flex; flex-direction: column; align-items: center; gap: 1rem; }
#pin-dots { display: flex; gap: 1rem; }
#pin-dots span { width: 2.2rem; height: 2.2rem; border-radius: 50%; border: 3px solid #333; background: #fff; }
#pin-dots span.on { background: #111; }
.keys { display: grid; grid-template-columns: repeat(3, 6rem); gap: .6rem; }
.keys button { font-size: 2.4rem; padding: .8rem 0; }
[hidden] { display: none !important; }
`;

/** The page script; MESSAGES are embedded so the page needs nothing else. */
export function kioskJs(): string {
  return `'use strict';
const MESSAGES = ${JSON.stringify(MESSAGES)};
let lang = document.body.dataset.lang;
let view = { screen: 'idle', health: 'ok', registrationEnabled: false };
const $ = (id) => document.getElementById(id);
const t = (key, vars) => {
  const m = MESSAGES[lang] || MESSAGES.ja;
  let s = m[key];
  if (s === undefined) return undefined;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace('{' + k + '}', String(v));
  return s;
};
const set = (id, text) => { const el = $(id); el.textContent = text || ''; el.hidden = !text; };
let formKind = '';

function render() {
  document.documentElement.lang = lang;
  for (const b of document.querySelectorAll('[data-set-lang]')) b.setAttribute('aria-pressed', String(b.dataset.setLang === lang));
  const h = $('health');
  h.dataset.health = view.health;
  set('health', view.health === 'ok' ? '' : t('health_' + view.health));
  const main = document.querySelector('main');
  let title = '', label = '', value = '', sub = '', form = '', register = false, cancel = false, pinpad = false;
  if (view.screen === 'result' && view.result) {
    const r = view.result;
    main.dataset.outcome = r.outcome;
    if (r.outcome === 'linked') { title = t('linked_title'); label = t('linked_label'); value = r.serviceUserId; }
    else if (r.outcome === 'not_linked') { title = t('not_linked_title'); sub = r.canRegister ? t('not_linked_sub') : ''; register = r.canRegister; }
    else if (r.outcome === 'refused') { title = t('refused_title'); sub = t('refused_' + r.reason) || t('refused_sub'); }
    else if (r.outcome === 'degraded') {
      title = t('degraded_title'); sub = t('degraded_sub');
      if (r.answer === 'linked') { label = t('linked_label'); value = r.serviceUserId; } else { label = t('degraded_not_linked'); }
    }
  } else if (view.screen === 'register' && view.register) {
    const g = view.register;
    main.dataset.outcome = g.step === 'done' ? 'linked' : g.step === 'failed' ? 'refused' : 'register';
    title = t('reg_title');
    cancel = g.step !== 'done' && g.step !== 'failed' && g.step !== 'sending';
    if (g.step === 'touch') sub = t('reg_touch');
    else if (g.step === 'service_user_id') { sub = t('reg_service_user_id'); form = 'service_user_id'; }
    else if (g.step === 'pin') {
      sub = g.retry === 'pin_wrong' ? t('reg_pin_wrong', { n: g.triesLeft }) : g.retry ? t('reg_failed_' + g.retry) || t('reg_pin') : t('reg_pin');
      form = 'pin';
    }
    else if (g.step === 'sending') sub = t('reg_sending');
    else if (g.step === 'done') { title = t('reg_done'); label = t('linked_label'); value = g.serviceUserId; sub = g.replaced ? t('reg_replaced') : ''; }
    else if (g.step === 'failed') { title = t('reg_failed'); sub = t('reg_failed_' + g.code) || ''; }
  } else if (view.screen === 'pin' && view.pin) {
    // PIN-checked touch (#14): the PIN pad. The digits live only in this page until they are posted.
    const g = view.pin;
    main.dataset.outcome = 'pin';
    title = t('pin_title');
    if (g.step === 'checking') sub = t('pin_checking');
    else {
      sub = g.retry === 'pin_wrong' ? t('pin_wrong', { n: g.triesLeft }) : t('pin_sub');
      if (g.triesLeft === 1) sub += ' ' + t('pin_last_try');
      pinpad = true;
    }
    cancel = g.step === 'pin';
  } else if (view.reader) {
    // The reader does not work: say so, and what the shop can do, instead of "touch your card".
    main.dataset.outcome = 'reader';
    title = t('reader_title'); sub = t('reader_' + view.reader.advice);
  } else {
    main.dataset.outcome = 'idle';
    title = t('touch_title'); sub = t('touch_sub');
    register = view.registrationEnabled;
  }
  set('title', title); set('label', label); set('value', value); set('sub', sub);
  const f = $('form'), field = $('field');
  if (form !== formKind) {
    formKind = form;
    field.value = '';
    if (form === 'pin') { field.type = 'password'; field.inputMode = 'numeric'; field.maxLength = 4; field.pattern = '[0-9]{4}'; }
    else { field.type = 'text'; field.inputMode = 'text'; field.maxLength = 64; field.removeAttribute('pattern'); }
    if (form) setTimeout(() => field.focus(), 0);
  }
  f.hidden = !form;
  if (form === 'pin' && view.register && view.register.retry) field.value = '';
  $('field-label').textContent = form === 'pin' ? t('reg_pin_label') : t('reg_service_user_id_label');
  $('submit').textContent = t('submit_button');
  const pad = $('pinpad');
  if (!pinpad) pinDigits = '';
  pad.hidden = !pinpad;
  for (const [i, d] of [...document.querySelectorAll('#pin-dots span')].entries()) d.classList.toggle('on', i < pinDigits.length);
  $('register').textContent = t('register_button'); $('register').hidden = !register;
  $('cancel').textContent = t('cancel_button'); $('cancel').hidden = !cancel;
}

// The PIN typed so far: only in this page, cleared when the PIN pad's state changes, posted at 4 digits.
let pinDigits = '';
function pinDigit(d) {
  if (view.screen !== 'pin' || !view.pin || view.pin.step !== 'pin' || pinDigits.length >= 4) return;
  pinDigits += d;
  if (pinDigits.length === 4) {
    const pin = pinDigits;
    pinDigits = '';
    post('/api/pin', { pin });
  }
  render();
}

function post(path, body) {
  return fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body || {}) }).catch(() => undefined);
}

document.addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (!b) return;
  if (b.dataset.setLang) { lang = b.dataset.setLang; render(); }
  else if (b.dataset.digit) pinDigit(b.dataset.digit);
  else if (b.id === 'pin-back') { pinDigits = pinDigits.slice(0, -1); render(); }
  else if (b.id === 'pin-clear') { pinDigits = ''; render(); }
  else if (b.id === 'register') post('/api/register/start');
  else if (b.id === 'cancel') post(view.screen === 'pin' ? '/api/pin/cancel' : '/api/register/cancel');
});
$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const v = $('field').value;
  $('field').value = '';
  if (formKind === 'pin') post('/api/register/pin', { pin: v });
  else if (formKind === 'service_user_id') post('/api/register/service-user-id', { serviceUserId: v.trim() });
});

document.addEventListener('keydown', (e) => {
  if (view.screen !== 'pin') return;
  if (/^[0-9]$/.test(e.key)) pinDigit(e.key);
  else if (e.key === 'Backspace') { pinDigits = pinDigits.slice(0, -1); render(); }
});

const es = new EventSource('/events');
es.addEventListener('view', (e) => {
  const next = JSON.parse(e.data);
  if (JSON.stringify(next.pin) !== JSON.stringify(view.pin)) pinDigits = '';
  view = next;
  render();
});
render();
`;
}
