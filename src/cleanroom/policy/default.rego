# The default policy of a clean-room instance, in force when the model owner
# gives none. The service has already authenticated the caller and checked
# that it is the owner or a named user; this policy checks it again (defence
# in depth) and bounds the size of what comes in. It declares no shaping.
# The input documents are described field by field in docs/policies.md.

package cleanroom

# Requests are denied unless a rule below proves them allowed.
default allow_ingress := false

default allow_egress := false

# The largest request the default policy admits, per action: 64 MiB of
# tensors for a prediction, 4 GiB for a model upload. An action missing here
# has no limit defined, so it is never allowed.
max_request_bytes := 67108864 if input.action == "predict"

max_request_bytes := 4294967296 if input.action == "upload_model"

# The caller is a party of this instance: its owner...
party_is_named if input.user == input.instance.owner

# ...or one of the users the owner named.
party_is_named if input.user in input.instance.users

# Only the owner may upload a model.
action_permitted if input.action == "predict"

action_permitted if {
	input.action == "upload_model"
	input.user == input.instance.owner
}

# A request comes in when a named party asks for a permitted action within
# the size bound.
allow_ingress if {
	party_is_named
	action_permitted
	input.request.nbytes <= max_request_bytes
}

# A result goes out to a named party; the service only produces results for
# requests this policy let in.
allow_egress if party_is_named

# Why a request was denied: every reason that applies, reported together.
deny_reason contains "the caller is neither the owner nor a named user of the instance" if {
	not party_is_named
}

deny_reason contains sprintf("the action \"%s\" is not permitted to this caller", [input.action]) if {
	input.direction == "ingress"
	not action_permitted
}

# %v, not %d: rego-cpp 1.x formats %d through a 32-bit integer.
deny_reason contains sprintf("the request is larger than %v bytes", [max_request_bytes]) if {
	input.direction == "ingress"
	input.request.nbytes > max_request_bytes
}
