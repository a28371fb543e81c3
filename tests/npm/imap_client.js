#!/usr/bin/env node
// What a modern IMAP client (imapflow) does with an account, for the integration
// tests (tests/integration/test_imapflow.py): every step's result is printed as
// one JSON object on stdout, so the test checks it against the messages it put
// there. Runs against hermod, and against the Dovecot reference to check the
// script itself.
//
//   node imap_client.js --port N --user U --pass P [--host 127.0.0.1] [--secure]
//        [--ca cert.pem] [--servername mx.example.test] [--idle-file F]
//
// Steps: connect (STARTTLS when offered, else plain on loopback), list with
// STATUS, open INBOX, fetch envelope/bodystructure/flags/size of everything,
// download part 1 of the first message and the whole of the last one, flag and
// unflag, copy the first message to Archive and move the second to Archive,
// append a draft, search, then (with --idle-file) enter IDLE, write the file
// so the test can deliver a message, and report the EXISTS it sees; finally
// reconnect with CONDSTORE/QRESYNC state and report what changed since.
'use strict';

const fs = require('fs');
const { ImapFlow } = require('imapflow');

function args(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--secure') { o.secure = true; continue; }
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error('bad argument ' + a);
    o[a.slice(2)] = argv[++i];
  }
  o.host = o.host || '127.0.0.1';
  for (const k of ['port', 'user', 'pass']) {
    if (!o[k]) throw new Error('missing --' + k);
  }
  return o;
}

function client(o, extra) {
  const tls = { servername: o.servername || 'mx.example.test' };
  if (o.ca) tls.ca = [fs.readFileSync(o.ca)];
  else tls.rejectUnauthorized = false;
  return new ImapFlow(Object.assign({
    host: o.host,
    port: Number(o.port),
    secure: !!o.secure,
    doSTARTTLS: o.secure ? undefined : (o.ca ? true : undefined),
    tls,
    auth: { user: o.user, pass: o.pass },
    // IMAP_CLIENT_LOG=1: imapflow's protocol log on stderr (for debugging a test)
    logger: process.env.IMAP_CLIENT_LOG ? {
      debug: (o) => process.stderr.write(JSON.stringify(o) + '\n'),
      info: (o) => process.stderr.write(JSON.stringify(o) + '\n'),
      warn: (o) => process.stderr.write(JSON.stringify(o) + '\n'),
      error: (o) => process.stderr.write(JSON.stringify(o) + '\n'),
    } : false,
    disableAutoIdle: true,
    qresync: true,
  }, extra || {}));
}

function addrs(list) {
  return (list || []).map((a) => ({ name: a.name || '', address: a.address || '' }));
}

function struct(node) {
  if (!node) return null;
  const r = { type: node.type, part: node.part || null, size: node.size || 0 };
  if (node.encoding) r.encoding = node.encoding;
  if (node.parameters && node.parameters.charset) r.charset = node.parameters.charset;
  if (node.dispositionParameters && node.dispositionParameters.filename)
    r.filename = node.dispositionParameters.filename;
  if (node.childNodes) r.children = node.childNodes.map(struct);
  return r;
}

async function readAll(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

async function main() {
  const o = args(process.argv.slice(2));
  const out = {};
  const c = client(o);
  await c.connect();
  out.capabilities = Array.from(c.capabilities.keys()).sort();
  out.enabled = Array.from(c.enabled || []).sort();

  const list = await c.list({ statusQuery: { messages: true, unseen: true, uidNext: true,
    uidValidity: true, highestModseq: true } });
  out.list = list.map((m) => ({
    path: m.path, specialUse: m.specialUse || null, flags: Array.from(m.flags || []).sort(),
    status: m.status ? { messages: m.status.messages, unseen: m.status.unseen } : null,
  }));

  const box = await c.mailboxOpen('INBOX');
  out.open = { exists: box.exists, uidValidity: String(box.uidValidity),
    uidNext: box.uidNext, highestModseq: box.highestModseq ? String(box.highestModseq) : null,
    permanentFlags: Array.from(box.permanentFlags || []).sort() };

  out.messages = [];
  if (box.exists > 0) {
    for await (const m of c.fetch('1:*', { uid: true, flags: true, envelope: true,
      bodyStructure: true, size: true, internalDate: true })) {
      out.messages.push({
        seq: m.seq, uid: m.uid, flags: Array.from(m.flags || []).sort(), size: m.size,
        subject: m.envelope.subject || '', from: addrs(m.envelope.from),
        to: addrs(m.envelope.to), messageId: m.envelope.messageId || '',
        date: m.envelope.date ? m.envelope.date.toISOString() : null,
        struct: struct(m.bodyStructure),
      });
    }
    const first = out.messages[0], last = out.messages[out.messages.length - 1];
    const part = await c.download(String(first.uid), '1', { uid: true });
    out.firstPart1 = (await readAll(part.content)).toString('utf8');
    const whole = await c.download(String(last.uid), undefined, { uid: true });
    out.lastWhole = (await readAll(whole.content)).toString('base64');

    await c.messageFlagsAdd(String(first.uid), ['\\Flagged', '$Label1'], { uid: true });
    await c.messageFlagsRemove(String(first.uid), ['\\Seen'], { uid: true });
    const f = await c.fetchOne(String(first.uid), { flags: true }, { uid: true });
    out.flagsAfter = Array.from(f.flags).sort();

    out.copy = await c.messageCopy(String(first.uid), 'Archive', { uid: true });
    if (out.messages.length > 1) {
      out.move = await c.messageMove(String(out.messages[1].uid), 'Archive', { uid: true });
    }
    if (out.copy && out.copy.uidMap) out.copy.uidMap = Array.from(out.copy.uidMap.entries());
    if (out.move && out.move.uidMap) out.move.uidMap = Array.from(out.move.uidMap.entries());
    out.search = await c.search({ flagged: true }, { uid: true });
    out.searchSubject = await c.search({ subject: 'second' }, { uid: true });
  }
  const draft = 'From: <' + o.user + '>\r\nTo: <someone@example.test>\r\n' +
    'Subject: draft from imapflow\r\n\r\nnot sent yet\r\n';
  out.append = await c.append('Drafts', draft, ['\\Draft', '\\Seen']);
  const drafts = await c.status('Drafts', { messages: true });
  out.draftsAfter = drafts.messages;

  if (o['idle-file']) {
    await c.mailboxOpen('INBOX');
    const before = c.mailbox.exists;
    const seen = new Promise((resolve) => {
      c.on('exists', (d) => { if (d.count > before) resolve(d.count); });
    });
    const idling = c.idle();
    await new Promise((r) => setTimeout(r, 200));
    fs.writeFileSync(o['idle-file'], 'idle\n');
    const timeout = new Promise((resolve) => setTimeout(() => resolve(-1), 20000));
    out.idleExists = await Promise.race([seen, timeout]);
    out.idleBefore = before;
    await c.noop();
    await idling.catch(() => {});
  }
  const state = { uidValidity: c.mailbox.uidValidity, highestModseq: c.mailbox.highestModseq };
  await c.logout();

  // a second session resynchronises with what the first one saw
  if (state.highestModseq) {
    const c2 = client(o);
    await c2.connect();
    const flagsSeen = [];
    c2.on('flags', (d) => flagsSeen.push({ uid: d.uid, flags: Array.from(d.flags).sort() }));
    const vanished = [];
    c2.on('expunge', (d) => vanished.push(d.uid || d.seq));
    const b2 = await c2.mailboxOpen('INBOX', { changedSince: state.highestModseq,
      uidValidity: state.uidValidity });
    out.resync = { exists: b2.exists, vanished, flagsSeen };
    await c2.logout();
  }
  process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? String(v) : v)) + '\n');
}

main().then(() => process.exit(0), (err) => {
  process.stdout.write(JSON.stringify({ error: String(err && (err.responseText || err.message) || err),
    code: err && err.code || null }) + '\n');
  process.exit(1);
});
