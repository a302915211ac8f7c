package store

import (
	"encoding/json"
	"time"
)

// EnrollTokenDetail is the detail of an enrollment token's audit entry,
// the same in every store: the token's id, name, labels, expiry and
// limit, and "by", the admin token that acted. Never its hash.
func EnrollTokenDetail(t EnrollToken, by string) json.RawMessage {
	d := struct {
		ID        int64             `json:"id"`
		Token     string            `json:"token"`
		Labels    map[string]string `json:"labels,omitempty"`
		ExpiresAt time.Time         `json:"expiresAt,omitzero"`
		MaxUses   int64             `json:"maxUses,omitempty"`
		Uses      int64             `json:"uses"`
		By        string            `json:"by"`
	}{t.ID, t.Name, t.Labels, t.ExpiresAt.UTC(), t.MaxUses, t.Uses, by}
	// A struct of strings, numbers and a string map always encodes.
	b, _ := json.Marshal(d)
	return b
}

// EnrollDetail is the detail of an endpoint's enroll audit entry: its
// hostname and, when it enrolled with an enrollment token, the token's
// name (never its secret).
func EnrollDetail(hostname, token string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Hostname string `json:"hostname"`
		Token    string `json:"token,omitempty"`
	}{hostname, token})
	return b
}
