# The feature stage's policy: raw cash flows come in from named parties only,
# as predictions of at most 1 MiB; only the owner uploads the feature model;
# results go back only to named parties. Its digest is what the scoring
# clean room's allow-list names for this upstream.

package cleanroom

default allow_ingress := false

default allow_egress := false

party_is_named if input.user == input.instance.owner

party_is_named if input.user in input.instance.users

allow_ingress if {
	party_is_named
	input.action == "predict"
	input.request.nbytes <= 1048576
}

allow_ingress if {
	input.action == "upload_model"
	input.user == input.instance.owner
}

allow_egress if party_is_named
