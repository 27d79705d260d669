package authority

import (
	"strings"
	"testing"

	"github.com/sigstore/sigstore-go/pkg/root"
)

const (
	ghIssuer  = "https://token.actions.githubusercontent.com"
	release   = `^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v`
	workflow  = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
	evilRepo  = "https://github.com/acme/app.evil/.github/workflows/release.yml@refs/tags/v1.2.0"
	otherFlow = "https://github.com/acme/app/.github/workflows/nightly.yml@refs/heads/main"
)

func trustRoot(digest string) TrustRoot {
	return TrustRoot{Name: "corp", Material: root.TrustedMaterialCollection{}, Digest: digest}
}

func mustIdentity(t *testing.T, issuer, issuerRE, subject, subjectRE string) Identity {
	t.Helper()
	id, err := NewIdentity(issuer, issuerRE, subject, subjectRE)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNewIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                                 string
		issuer, issuerRE, subject, subjectRE string
		wantErr                              string
	}{
		{"exact", ghIssuer, "", workflow, "", ""},
		{"regexp subject", ghIssuer, "", "", release + ".*", ""},
		{"both subjects", ghIssuer, "", workflow, release, "set subject or subjectRegExp, not both"},
		{"no subject", ghIssuer, "", "", "", "set subject or subjectRegExp"},
		{"no issuer", "", "", workflow, "", "set issuer or issuerRegExp"},
		{"bad regexp names the field and the part", ghIssuer, "", "", `^https://(github\.com`, "subjectRegExp \"^https://(github\\\\.com\": missing closing ): "},
	}
	for _, tt := range tests {
		_, err := NewIdentity(tt.issuer, tt.issuerRE, tt.subject, tt.subjectRE)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestIdentityMatchesWholeValue: a regular expression matches the whole
// subject, so a repository that merely starts like the trusted one (or a
// subject that contains it) does not match.
func TestIdentityMatchesWholeValue(t *testing.T) {
	t.Parallel()
	anchored := mustIdentity(t, ghIssuer, "", "", release+".*")
	unanchored := mustIdentity(t, ghIssuer, "", "", `https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*`)
	for _, id := range []Identity{anchored, unanchored} {
		if !id.Matches(workflow, ghIssuer) {
			t.Errorf("%s does not match %s", id, workflow)
		}
		for _, bad := range []string{evilRepo, otherFlow, "x" + workflow} {
			if id.Matches(bad, ghIssuer) {
				t.Errorf("%s matches %s", id, bad)
			}
		}
		if id.Matches(workflow, "https://accounts.google.com") {
			t.Errorf("%s matches another issuer", id)
		}
	}
}

func TestKeylessMatch(t *testing.T) {
	t.Parallel()
	k, err := NewKeyless(trustRoot("d1"), []Identity{mustIdentity(t, ghIssuer, "", "", release+".*")}, map[string]string{"githubWorkflowRepository": "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Match(workflow, ghIssuer, map[string]string{"githubWorkflowRepository": "acme/app"}); err != nil {
		t.Errorf("match: %v", err)
	}
	err = k.Match(otherFlow, ghIssuer, map[string]string{"githubWorkflowRepository": "acme/app"})
	if err == nil || !strings.Contains(err.Error(), `certificate subject "`+otherFlow+`" from issuer "`+ghIssuer+`" matches none of: subject ~ `) {
		t.Errorf("other workflow: %v", err)
	}
	err = k.Match(workflow, ghIssuer, map[string]string{"githubWorkflowRepository": "acme/fork"})
	if err == nil || err.Error() != `certificate extension githubWorkflowRepository is "acme/fork", want "acme/app"` {
		t.Errorf("other repository: %v", err)
	}
	if _, err := NewKeyless(trustRoot("d1"), []Identity{mustIdentity(t, ghIssuer, "", workflow, "")}, map[string]string{"githubRepo": "x"}); err == nil || !strings.Contains(err.Error(), `unknown certificate extension "githubRepo"`) {
		t.Errorf("unknown extension: %v", err)
	}
	if _, err := NewKeyless(TrustRoot{Name: "corp"}, []Identity{mustIdentity(t, ghIssuer, "", workflow, "")}, nil); err == nil {
		t.Error("keyless without trust material accepted")
	}
	if _, err := NewKeyless(trustRoot("d1"), []Identity{{Issuer: ghIssuer, SubjectRegExp: ".*"}}, nil); err == nil {
		t.Error("an identity not made by NewIdentity accepted")
	}
}

// TestKeylessInSets: keyless authorities count as distinct by what they
// accept, and the set's fingerprint covers the trust root's content.
func TestKeylessInSets(t *testing.T) {
	t.Parallel()
	id := mustIdentity(t, ghIssuer, "", workflow, "")
	other := mustIdentity(t, ghIssuer, "", otherFlow, "")
	keyless := func(digest string, ids ...Identity) *Keyless {
		k, err := NewKeyless(trustRoot(digest), ids, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	set := func(threshold int, as ...Authority) (Set, error) { return NewSet(threshold, as...) }

	base, err := set(1, Authority{Name: "release", Keyless: keyless("d1", id)})
	if err != nil {
		t.Fatal(err)
	}
	renamed, _ := set(1, Authority{Name: "other name", Keyless: keyless("d1", id)})
	rotated, _ := set(1, Authority{Name: "release", Keyless: keyless("d2", id)})
	if base.Fingerprint() != renamed.Fingerprint() {
		t.Error("a name change changed the fingerprint")
	}
	if base.Fingerprint() == rotated.Fingerprint() {
		t.Error("a trust root change kept the fingerprint")
	}
	if _, err := set(2, Authority{Name: "a", Keyless: keyless("d1", id)}, Authority{Name: "b", Keyless: keyless("d1", id)}); err == nil {
		t.Error("two authorities accepting the same identity counted twice")
	}
	if _, err := set(2, Authority{Name: "a", Keyless: keyless("d1", id)}, Authority{Name: "b", Keyless: keyless("d1", other)}); err != nil {
		t.Errorf("two identities: %v", err)
	}
	if _, err := set(1, Authority{Name: "both", Key: newKey(t), Keyless: keyless("d1", id)}); err == nil || !strings.Contains(err.Error(), "both a key and a keyless identity") {
		t.Errorf("key and keyless: %v", err)
	}
	if _, err := set(1, Authority{Name: "raw", Keyless: &Keyless{}}); err == nil {
		t.Error("a Keyless not made by NewKeyless accepted")
	}
}
