// Checks an SNS message with AWS's own validator, for tests/all/sns.rs:
// argv is the message (JSON) and the host the test's certificate server
// answers on (127.0.0.1:port), which replaces the validator's pattern of
// SNS hosts; NODE_EXTRA_CA_CERTS names the test's CA, so that the
// validator's own https.get trusts that server. Prints "ok", or the
// validator's error and exits 1. `sns-validator` (npm, from
// github.com/aws/aws-js-sns-message-validator) is installed, pinned, into
// tests/all/signers/node_modules by .ci/run.
const MessageValidator = require("sns-validator");

const [message, host] = process.argv.slice(2);
const pattern = new RegExp("^" + host.replace(/\./g, "\\.") + "$");
new MessageValidator(pattern).validate(message, (err) => {
  if (err) {
    process.stdout.write(String(err.message));
    process.exit(1);
  }
  process.stdout.write("ok");
  // The https agent keeps its connection open; do not wait for it.
  process.exit(0);
});
