// Signs a request as Contentful does, with its official toolkit, for
// tests/all/preset_proofs.rs: argv is secret, method, path (with query),
// body, timestamp (ms) and a JSON object of further headers to sign.
// Prints the headers signRequest returns, as JSON. The toolkit is
// installed (pinned) into tests/all/signers/node_modules by .ci/run.
const { signRequest } = require("@contentful/node-apps-toolkit");

const [secret, method, path, body, timestamp, extra] = process.argv.slice(2);
const headers = JSON.parse(extra);
const signed = signRequest(secret, { method, path, headers, body }, Number(timestamp));
process.stdout.write(JSON.stringify(signed));
