#!/usr/bin/env node
// Sends one message with nodemailer through hermod's submission service.
//
//   node send.js --port N --user U --pass P --from A --to B[,C] --subject S
//        [--host 127.0.0.1] [--servername mx.example.test] [--ca cert.pem]
//        [--secure] [--text BODY] [--auth-method PLAIN|LOGIN]
//
// Without --secure: plain connection + STARTTLS, required (port 587 role).
// With --secure: implicit TLS (port 465 role). Each option may also come from
// the environment as SEND_<NAME> (SEND_PORT, SEND_USER, ...).
// Prints {"response": "...", "accepted": [...], "rejected": [...], "messageId": "..."}
// and exits 0 on success; prints the error and exits 1 on failure.
'use strict';

const fs = require('fs');
const nodemailer = require('nodemailer');

function args(argv) {
  const o = {};
  const env = (k) => process.env['SEND_' + k.toUpperCase().replace(/-/g, '_')];
  for (const k of ['host', 'port', 'servername', 'ca', 'user', 'pass', 'from', 'to',
    'subject', 'text', 'auth-method']) {
    if (env(k) !== undefined) o[k] = env(k);
  }
  if (env('secure') !== undefined) o.secure = /^(1|yes|true)$/i.test(env('secure'));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--secure') { o.secure = true; continue; }
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error('bad argument ' + a);
    o[a.slice(2)] = argv[++i];
  }
  o.host = o.host || '127.0.0.1';
  o.servername = o.servername || 'mx.example.test';
  for (const k of ['port', 'user', 'pass', 'from', 'to']) {
    if (!o[k]) throw new Error('missing --' + k);
  }
  return o;
}

async function main() {
  const o = args(process.argv.slice(2));
  const tlsOpts = {servername: o.servername, minVersion: 'TLSv1.2'};
  if (o.ca) tlsOpts.ca = [fs.readFileSync(o.ca)];
  else tlsOpts.rejectUnauthorized = false;
  const transport = nodemailer.createTransport({
    host: o.host,
    port: Number(o.port),
    secure: !!o.secure,
    requireTLS: !o.secure,
    name: 'nodemailer.example.test',
    auth: {user: o.user, pass: o.pass},
    authMethod: o['auth-method'] || undefined,
    tls: tlsOpts,
    connectionTimeout: 30000,
    greetingTimeout: 30000,
    socketTimeout: 60000,
  });
  const info = await transport.sendMail({
    from: o.from,
    to: o.to.split(','),
    subject: o.subject || 'nodemailer test',
    text: o.text || 'Sent by nodemailer.\n',
  });
  transport.close();
  return {response: info.response, accepted: info.accepted, rejected: info.rejected,
    messageId: info.messageId};
}

main().then((r) => {
  process.stdout.write(JSON.stringify(r) + '\n');
  process.exit(0);
}, (e) => {
  process.stdout.write(JSON.stringify({error: String(e && e.message || e),
    code: e && e.code, response: e && e.response, responseCode: e && e.responseCode}) + '\n');
  process.exit(1);
});
