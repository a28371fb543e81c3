// DKIM verification with mailauth (an independent verifier of hermod's
// signatures), used by tests/integration/test_delivery.py:
//
//     node dkim_verify.js MESSAGE-FILE RECORDS-JSON
//
// RECORDS-JSON maps "<selector>._domainkey.<domain>" to its TXT value; no DNS
// is asked. Prints one JSON line: [{"domain", "selector", "algo", "result"}].
"use strict";
const fs = require("fs");
const { dkimVerify } = require("mailauth/lib/dkim/verify");

async function main() {
    const message = fs.readFileSync(process.argv[2]);
    const records = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
    const resolver = async (name, rrtype) => {
        const key = name.replace(/\.$/, "").toLowerCase();
        if (rrtype === "TXT" && records[key] !== undefined)
            return [[records[key]]];
        const err = new Error("no record for " + name);
        err.code = "ENOTFOUND";
        throw err;
    };
    const res = await dkimVerify(message, { resolver });
    const out = res.results.map((r) => ({
        domain: r.signingDomain,
        selector: r.selector,
        algo: r.algo,
        result: r.status.result,
    }));
    process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
    process.stderr.write(String(e.stack || e) + "\n");
    process.exit(1);
});
