# Policy of the cash-flow lending clean room.
#
# A lender's credit model scores a borrower from the borrower's bank
# statement. The bank's users send the features; the lender never sees them,
# and the bank never sees the model. This module decides who may send what,
# on which consent, and what may come out. It is the instance's whole policy:
# its digest is committed in the attestation evidence, so the bank verifies
# every rule below - and the consent manager key pinned in it - before it
# sends any data. The input documents are described in docs/policies.md.

package cleanroom

# ---------------------------------------------------------------- parties

# The bank's users who may ask for a score, each with the Financial
# Information Provider (FIP) identifier of the bank they act for; a consent
# must name an account held at that FIP.
bank_users := {
	"analyst@bank.example": "SYNTHBANK-FIP",
	"underwriter@bank.example": "SYNTHBANK-FIP",
}

# The lender as the Financial Information User (FIU) the borrower consented
# to share with. A consent given to anyone else is refused.
lender_fiu_id := "LENDER-FIU"

# ---------------------------------------------------------------- consent

# The consent manager whose signature makes a consent artefact valid: its
# identifier (the JWT "iss") and its ES256 public key. The key is part of the
# module text, hence of the attested policy digest; the template carries a
# placeholder that is not a key, so an unrendered template admits nothing.
consent_manager_id := "consent-manager.aa.example"

consent_manager_public_key := "@CONSENT_MANAGER_PUBLIC_KEY@"

# ReBIT purpose code 105: explicit one-time consent for the accounts.
required_purpose_code := "105"

# At most this many scores per bank user on this instance. The clean room
# counts allowed predictions per user and instance (input.usage.queries), not
# per consent: the cap bounds the whole engagement, and each score within it
# still needs a valid consent of its own.
max_queries := 3

# The model's input: one row of the eight cash-flow features.
feature_shape := [1, 8]

# ---------------------------------------------------------------- shaping

# The score leaves rounded to one decimal: enough to price a loan, and far
# less telling than the raw probability to anyone probing the model with small
# changes of the features (the query cap bounds how often they can try).
shaping := {"score": {"round": 1}}

# ---------------------------------------------------------------- helpers

# The caller is one of the bank's users and the lender named it on the
# instance (the service checks the latter too; this is defence in depth).
caller_is_bank_user if {
	bank_users[input.user]
	input.user in input.instance.users
}

# The artefact travels in the sealed request context as a compact JWS string.
consent_token := input.context.consent if is_string(input.context.consent)

# Three base64url segments, checked before any JWT built-in sees the string:
# built-in errors are strict, so garbage would otherwise be an evaluation
# error rather than a clear reason.
consent_well_formed if regex.match(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, consent_token)

# The ECDSA P-256 signature verifies under the pinned key (RFC 7515, RFC 7518
# section 3.4). Anything signed by another key, or with another algorithm, fails.
consent_signed if {
	consent_well_formed
	io.jwt.verify_es256(consent_token, consent_manager_public_key)
}

# The claims, read only from an artefact whose signature verified, and whose
# protected header names the algorithm that was checked.
consent := claims if {
	consent_signed
	[header, claims, _] := io.jwt.decode(consent_token)
	header.alg == "ES256"
}

# Issued by the consent manager this policy trusts.
consent_issuer_ok if consent.iss == consent_manager_id

# In force now: nbf <= now < exp (RFC 7519 sections 4.1.4 and 4.1.5). The
# claims are seconds; input.now_ns is the clean room's clock in nanoseconds.
consent_started if {
	is_number(consent.nbf)
	consent.nbf * 1000000000 <= input.now_ns
}

consent_unexpired if {
	is_number(consent.exp)
	input.now_ns < consent.exp * 1000000000
}

# Given for the purpose this clean room serves.
consent_purpose_ok if consent.Purpose.code == required_purpose_code

# Given to this lender, for transaction data of a deposit account held at the
# caller's bank.
consent_consumer_ok if consent.DataConsumer.id == lender_fiu_id

consent_account_ok if {
	"TRANSACTIONS" in consent.consentTypes
	some account in consent.Accounts
	account.fiType == "DEPOSIT"
	account.fipId == bank_users[input.user]
}

# The period of transactions the features were computed from, declared by
# the bank in the request context as FIDataRange {from, to} (RFC 3339).
rfc3339 := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

# rego-cpp 1.x parses numeric offsets but not the "Z" designator, so UTC is
# rewritten as "+00:00" first (RFC 3339 section 2: "Z" is the offset 00:00).
instant(s) := time.parse_rfc3339_ns(regex.replace(s, "Z$", "+00:00")) if {
	is_string(s)
	regex.match(rfc3339, s)
}

# The declared period lies within the consented FIDataRange.
data_range_ok if {
	requested_from := instant(input.context.FIDataRange.from)
	requested_to := instant(input.context.FIDataRange.to)
	consented_from := instant(consent.FIDataRange.from)
	consented_to := instant(consent.FIDataRange.to)
	consented_from <= requested_from
	requested_from <= requested_to
	requested_to <= consented_to
}

consent_valid if {
	consent_issuer_ok
	consent_started
	consent_unexpired
	consent_purpose_ok
	consent_consumer_ok
	consent_account_ok
	data_range_ok
}

within_budget if input.usage.queries < max_queries

# Exactly one float32 feature row, and nothing else.
request_shape_ok if {
	input.request.names == ["features"]
	input.request.inputs.features.dtype == "float32"
	input.request.inputs.features.shape == feature_shape
}

# ---------------------------------------------------------------- ingress

default allow_ingress := false

# The lender uploads (and may replace) its model, up to 16 MiB.
allow_ingress if {
	input.action == "upload_model"
	input.user == input.instance.owner
	input.request.nbytes <= 16777216
}

# A bank user asks for one score, under a valid consent, within budget.
allow_ingress if {
	input.action == "predict"
	caller_is_bank_user
	consent_valid
	within_budget
	request_shape_ok
}

# ---------------------------------------------------------------- egress

default allow_egress := false

# Only the (shaped) decision and score leave, each a single value in range.
# is_number is needed: NaN arrives as the string "NaN", which would pass a
# bare comparison (docs/policies.md).
allow_egress if {
	input.action == "predict"
	caller_is_bank_user
	input.response.names == ["decision", "score"]
	input.response.outputs.score.shape == [1, 1]
	input.response.outputs.decision.shape == [1, 1]
	every v in input.response.outputs.score.values { is_number(v); v >= 0; v <= 1 }
	every v in input.response.outputs.decision.values { v in {0, 1} }
}

# ---------------------------------------------------------------- reasons
# Every reason that applies is reported, sorted. None quotes input values:
# the lender reads the decision log.

predicting if {
	input.direction == "ingress"
	input.action == "predict"
}

deny_reason contains "only the lender may upload the model" if {
	input.action == "upload_model"
	input.user != input.instance.owner
}

deny_reason contains "the model is larger than 16 MiB" if {
	input.action == "upload_model"
	input.request.nbytes > 16777216
}

deny_reason contains "only the bank's named users may ask for a score" if {
	input.action == "predict"
	not caller_is_bank_user
}

deny_reason contains "no consent artefact in the request context" if {
	predicting
	not consent_token
}

deny_reason contains "the consent artefact is not a compact JWS" if {
	predicting
	consent_token
	not consent_well_formed
}

deny_reason contains "the consent artefact is not signed by the pinned consent manager key" if {
	predicting
	consent_well_formed
	not consent
}

deny_reason contains "the consent was not issued by the trusted consent manager" if {
	predicting
	consent
	not consent_issuer_ok
}

deny_reason contains "the consent is not in force yet" if {
	predicting
	consent
	not consent_started
}

deny_reason contains "the consent has expired" if {
	predicting
	consent
	not consent_unexpired
}

deny_reason contains "the consent's purpose is not code 105 (one-time consent for the accounts)" if {
	predicting
	consent
	not consent_purpose_ok
}

deny_reason contains "the consent was given to another data consumer" if {
	predicting
	consent
	not consent_consumer_ok
}

deny_reason contains "the consent does not cover transactions of a deposit account at the caller's bank" if {
	predicting
	consent
	caller_is_bank_user
	not consent_account_ok
}

deny_reason contains "the data range is outside the consented FIDataRange" if {
	predicting
	consent
	not data_range_ok
}

deny_reason contains "the query budget is exhausted" if {
	predicting
	not within_budget
}

deny_reason contains "the request must be one float32 row of the eight cash-flow features" if {
	predicting
	not request_shape_ok
}

deny_reason contains "only the decision and the score may leave the clean room" if {
	input.direction == "egress"
	input.response.names != ["decision", "score"]
}

deny_reason contains "the score and decision must be single values in range" if {
	input.direction == "egress"
	input.response.names == ["decision", "score"]
	not allow_egress
}
