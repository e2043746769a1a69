"""Signs a webhook as its provider's official SDK does, for
tests/all/preset_proofs.rs. argv[1] names the SDK; the rest are its inputs.
Prints the signature (or header value) the SDK produces. The packages are
pinned in .ci/run.

  standardwebhooks|svix SECRET ID SECONDS BODY whsec|raw -> "v1,<base64>"
      (raw: the secret's own bytes are the key, as Polar's SDK arranges)
  slack SECRET SECONDS BODY   -> "v0=<hex>"   slack_sdk SignatureVerifier
  coinbase SECRET BODY        -> "<hex>"      coinbase_commerce WebhookSignature
  modern-treasury SECRET BODY -> "<hex>"      modern_treasury webhooks.get_signature
  box SECRET TIMESTAMP BODY   -> "<base64>"   box_sdk_gen compute_webhook_signature
  adyen HEXKEY BODY           -> the body with the first item's
                                 additionalData.hmacSignature set by
                                 Adyen.util.generate_notification_sig
  adyen-platform HEXKEY BODY  -> "<base64>"   Adyen.util.generate_payload_sig
  plivo TOKEN URL NONCE METHOD BODY -> "<base64>" plivo.utils.signature_v3
                                 (construct_get_url/construct_post_url and
                                 get_signature_v3)
  braintree PRIVATE_KEY ID    -> a form body (bt_signature, bt_payload) from
                                 WebhookTesting.sample_notification
  stripe SECRET SECONDS BODY  -> "t=..,v1=<hex>" stripe
                                 WebhookSignature.generate_signature_header
  twilio TOKEN URL FORM       -> "<base64>"   twilio RequestValidator.compute_signature
  hubspot SECRET METHOD URL BODY MS -> "<base64>" hubspot.utils.signature
                                 Signature.get_signature (v3)

Where an SDK cannot sign but can verify, the check runs the SDK's own
verify function on a request the test signed, and exits non-zero if the
SDK refuses it:

  razorpay-verify SECRET SIGNATURE BODY    razorpay Utility.verify_webhook_signature
  gocardless-verify SECRET SIGNATURE BODY  gocardless_pro webhooks.parse
  square-verify KEY SIGNATURE URL BODY     square.utils.webhooks_helper.verify_signature
  pusher-verify SECRET SIGNATURE APPKEY BODY  pusher Pusher.validate_webhook
  workos-verify SECRET SIGNATURE BODY      workos WorkOSClient.webhooks.verify_header
  elevenlabs-verify SECRET SIGNATURE BODY  elevenlabs ElevenLabs.webhooks.construct_event
  orb-verify SECRET SIGNATURE TIMESTAMP BODY  orb Orb.webhooks.verify_signature
  paddle-verify SECRET SIGNATURE BODY      paddle_billing Notifications.Verifier.verify
                                           (signature only; see there)
  worldline-verify SECRET SIGNATURE BODY   worldline.connect.sdk (connect-sdk-python3)
                                           SignatureValidator.validate, key id k1
"""

import sys
from datetime import datetime, timezone

sdk, args = sys.argv[1], sys.argv[2:]

if sdk in ("standardwebhooks", "svix"):
    if sdk == "svix":
        from svix.webhooks import Webhook
    else:
        from standardwebhooks import Webhook
    secret, msg_id, seconds, body, form = args
    key = secret.encode() if form == "raw" else secret
    when = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    print(Webhook(key).sign(msg_id, when, body))
elif sdk == "slack":
    from slack_sdk.signature import SignatureVerifier

    secret, seconds, body = args
    print(SignatureVerifier(secret).generate_signature(timestamp=seconds, body=body))
elif sdk == "coinbase":
    # The SDK's own signature computation (its verify_sig_header compares
    # against it); coinbase-commerce has no public signing call.
    from coinbase_commerce.webhook import WebhookSignature

    secret, body = args
    print(WebhookSignature._compute_signature(body, secret))
elif sdk == "modern-treasury":
    from modern_treasury import ModernTreasury

    secret, body = args
    client = ModernTreasury(api_key="unused", organization_id="unused")
    print(client.webhooks.get_signature(body, key=secret))
elif sdk == "box":
    from box_sdk_gen.internal.utils import compute_webhook_signature

    secret, timestamp, body = args
    headers = {
        "box-signature-version": "1",
        "box-signature-algorithm": "HmacSHA256",
        "box-delivery-timestamp": timestamp,
    }
    print(compute_webhook_signature(body, headers, secret))
elif sdk == "adyen":
    import json

    from Adyen.util import generate_notification_sig

    key, body = args
    doc = json.loads(body)
    item = doc["notificationItems"][0]["NotificationRequestItem"]
    fields = {k: v for k, v in item.items() if k != "additionalData"}
    signature = generate_notification_sig(fields, key).decode()
    item.setdefault("additionalData", {})["hmacSignature"] = signature
    print(json.dumps(doc))
elif sdk == "adyen-platform":
    from Adyen.util import generate_payload_sig

    key, body = args
    print(generate_payload_sig(body.encode(), key).decode())
elif sdk == "braintree":
    from urllib.parse import urlencode

    import braintree

    private_key, notification_id = args
    config = braintree.Configuration(
        braintree.Environment.Sandbox,
        merchant_id="merchant",
        public_key="public-key",
        private_key=private_key,
    )
    gateway = braintree.BraintreeGateway(config)
    sample = gateway.webhook_testing.sample_notification(
        braintree.WebhookNotification.Kind.SubscriptionWentPastDue, notification_id
    )
    payload = sample["bt_payload"]
    if isinstance(payload, bytes):
        payload = payload.decode()
    # The signature first: the proofs change the last letter of the body,
    # which must then fall in the signed payload.
    print(urlencode({"bt_signature": sample["bt_signature"], "bt_payload": payload}))
elif sdk == "plivo":
    from urllib.parse import parse_qs

    from plivo.utils.signature_v3 import (
        construct_get_url,
        construct_post_url,
        get_signature_v3,
    )

    token, url, nonce, method, body = args
    params = parse_qs(body, keep_blank_values=True)
    if method == "GET":
        base = construct_get_url(url, params)
    else:
        base = construct_post_url(url, params)
    print(get_signature_v3(token, base.decode(), nonce).decode())
elif sdk == "stripe":
    from stripe import WebhookSignature

    secret, seconds, body = args
    print(WebhookSignature.generate_signature_header(body, secret, timestamp=int(seconds)))
elif sdk == "razorpay-verify":
    import razorpay

    secret, signature, body = args
    # Raises SignatureVerificationError on a bad signature.
    razorpay.Client(auth=("unused", "unused")).utility.verify_webhook_signature(
        body, signature, secret
    )
    print("ok")
elif sdk == "gocardless-verify":
    from gocardless_pro import webhooks

    secret, signature, body = args
    # Raises InvalidSignatureError on a bad signature; the body must be
    # GoCardless's shape ({"events": [...]}) for it to parse.
    webhooks.parse(body, secret, signature)
    print("ok")
elif sdk == "twilio":
    from urllib.parse import parse_qs

    from twilio.request_validator import RequestValidator

    token, url, form = args
    # A plain dict, one value per name, as a framework hands Twilio's form.
    params = {k: v[0] for k, v in parse_qs(form, keep_blank_values=True).items()}
    print(RequestValidator(token).compute_signature(url, params))
elif sdk == "hubspot":
    from hubspot.utils.signature import Signature

    secret, method, url, body, ms = args
    print(Signature.get_signature(secret, body, "v3", url, method, ms))
elif sdk == "square-verify":
    from square.utils.webhooks_helper import verify_signature

    key, signature, url, body = args
    if not verify_signature(
        request_body=body,
        signature_header=signature,
        signature_key=key,
        notification_url=url,
    ):
        sys.exit("square: the SDK refuses the signature")
    print("ok")
elif sdk == "pusher-verify":
    import pusher

    secret, signature, app_key, body = args
    client = pusher.Pusher(app_id="1", key=app_key, secret=secret)
    # None when the key, the signature or the body's time_ms (five
    # minutes) is wrong.
    if client.validate_webhook(app_key, signature, body) is None:
        sys.exit("pusher: the SDK refuses the webhook")
    print("ok")
elif sdk == "workos-verify":
    from workos import WorkOSClient

    secret, signature, body = args
    client = WorkOSClient(api_key="unused", client_id="unused")
    # Raises ValueError on a bad signature or a time outside 180 s.
    client.webhooks.verify_header(
        event_body=body.encode(), event_signature=signature, secret=secret
    )
    print("ok")
elif sdk == "elevenlabs-verify":
    from elevenlabs import ElevenLabs

    secret, signature, body = args
    # Raises BadRequestError on a bad signature or a time older than 30 min.
    ElevenLabs(api_key="unused").webhooks.construct_event(body, signature, secret)
    print("ok")
elif sdk == "paddle-verify":
    from types import SimpleNamespace

    from paddle_billing.Notifications import Secret, Verifier

    secret, signature, body = args
    # The SDK reads a framework's request: headers and the raw body.
    request = SimpleNamespace(
        headers={"Paddle-Signature": signature}, body=body.encode()
    )
    # False on a bad signature. Its 5 s time check is off: python3
    # importing the SDK alone can take that long on a loaded test run, and
    # the proof tests the window's edges against hookguard itself.
    if not Verifier().verify(request, Secret(secret), verify_time_drift=False):
        sys.exit("paddle: the SDK refuses the signature")
    print("ok")
elif sdk == "orb-verify":
    from orb import Orb

    secret, signature, timestamp, body = args
    # Raises ValueError on a bad signature or a time outside 5 minutes.
    Orb(api_key="unused").webhooks.verify_signature(
        body,
        {"X-Orb-Timestamp": timestamp, "X-Orb-Signature": signature},
        secret=secret,
    )
    print("ok")
elif sdk == "worldline-verify":
    from worldline.connect.sdk.communication.request_header import RequestHeader
    from worldline.connect.sdk.webhooks.in_memory_secret_key_store import InMemorySecretKeyStore
    from worldline.connect.sdk.webhooks.signature_validator import SignatureValidator

    secret, signature, body = args
    store = InMemorySecretKeyStore.instance()
    store.store_secret_key("k1", secret)
    headers = [RequestHeader("X-GCS-Signature", signature), RequestHeader("X-GCS-KeyId", "k1")]
    # Raises SignatureValidationException on a bad signature.
    SignatureValidator(store).validate(body.encode("utf-8"), headers)
    print("ok")
else:
    sys.exit(f"unknown sdk {sdk}")
