//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/signgate/signgate/e2e/harness"
)

// The builder the policy trusts, and one it does not.
const (
	trustedBuilder = "https://github.com/acme/release/.github/workflows/release.yml@refs/heads/main"
	otherBuilder   = "https://github.com/mallory/fork/.github/workflows/release.yml@refs/heads/main"
)

// attestationRequirements are the attestations of docs/policies.md's
// Attestations example, verbatim: SLSA v1 provenance from acme's builder,
// an SPDX SBOM, and a vulnerability scan of the last 7 days without
// CRITICAL findings.
var attestationRequirements = []any{
	map[string]any{
		"name":          "provenance",
		"predicateType": "https://slsa.dev/provenance/v1",
		"condition":     `predicate.runDetails.builder.id.startsWith("https://github.com/acme/")`,
		"message":       `'built by ' + predicate.runDetails.builder.id`,
	},
	map[string]any{
		"name":          "sbom",
		"predicateType": "spdxjson",
	},
	map[string]any{
		"name":          "scan",
		"predicateType": "vuln",
		"condition": `now - timestamp(predicate.metadata.scanFinishedOn) < duration("168h") &&
!(has(predicate.scanner.result.Results) &&
  predicate.scanner.result.Results.exists(r,
    has(r.Vulnerabilities) && r.Vulnerabilities.exists(v, v.Severity == "CRITICAL")))`,
		"message": `'scan of ' + predicate.metadata.scanFinishedOn +
' is older than 7 days or has critical findings'`,
	},
}

// attested is what is attested about one test image with the real cosign
// CLI (`cosign attest --key`), in one layout.
type attested struct {
	name     string
	builder  string    // provenance's runDetails.builder.id; "" = no provenance
	sbom     bool      // an SPDX SBOM
	scanned  time.Time // the scan's scanFinishedOn; zero = no scan
	critical bool      // the scan found a CRITICAL vulnerability
	// layout is where the image's signature and attestations are:
	// harness.Classic (.sig and .att tags) or harness.Bundle (sigstore
	// bundles as OCI referrers, `cosign sign|attest --new-bundle-format`).
	layout harness.Layout
}

// Attestations made by the real cosign CLI (SLSA v1 provenance, SPDX
// SBOM, cosign's vuln predicate wrapping a Trivy report), required by a
// ClusterImagePolicy with the conditions of docs/policies.md: an image
// with all three is admitted; a wrong builder, a missing SBOM, a CRITICAL
// finding and a scan older than 7 days are each denied, naming the
// attestation and why. Every case runs in both layouts cosign writes: the
// classic one (signature and attestations under the .sig and .att tags)
// and the bundle one (`--new-bundle-format`: the signature and the
// attestations as sigstore bundles attached as OCI referrers; the test
// registry has no referrers API, so under the fallback tag sha256-<hex>).
func TestAttestations(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	reg := env.Registry()
	ns := namespace(t, nil)
	now := time.Now().UTC()
	recent := now.Add(-time.Hour)
	stale := now.Add(-8 * 24 * time.Hour)

	layouts := []harness.Layout{harness.Classic}
	if env.Cosign.SupportsBundle(ctx) && env.Cosign.SupportsBundleAttest(ctx) {
		layouts = append(layouts, harness.Bundle)
	} else {
		t.Logf("%s has no sign/attest --new-bundle-format: bundle layout not covered", env.Cosign.Bin)
	}
	base := []attested{
		{name: "good", builder: trustedBuilder, sbom: true, scanned: recent},
		{name: "wrong-builder", builder: otherBuilder, sbom: true, scanned: recent},
		{name: "no-sbom", builder: trustedBuilder, scanned: recent},
		{name: "critical", builder: trustedBuilder, sbom: true, scanned: recent, critical: true},
		{name: "stale-scan", builder: trustedBuilder, sbom: true, scanned: stale},
	}
	var cases []attested
	for _, l := range layouts {
		for _, c := range base {
			c.layout = l
			cases = append(cases, c)
		}
	}
	t0 := time.Now()
	images := make([]name.Digest, len(cases))
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			images[i], errs[i] = pushAttested(t, reg, c)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("image %s (%s): %v", cases[i].name, cases[i].layout, err)
		}
	}
	t.Logf("measure: %d images signed and attested with cosign in %s", len(cases), time.Since(t0).Round(time.Millisecond))

	// The policy covers only this test's repositories.
	cip := harness.ClusterImagePolicy("e2e-attestations", harness.PolicySpec{
		Images: []string{reg.Repo(repo(t, "**"))},
		Keys:   []harness.KeyPair{keyA},
	})
	requireAttestations(t, cip, attestationRequirements)
	if err := env.ApplyPolicy(ctx, cip); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Dynamic.Resource(harness.ClusterImagePolicyGVR).Delete(ctx, cip.GetName(), metav1.DeleteOptions{})
	})
	// Before the gate has the policy the image is not covered (denied):
	// wait until it decides under it.
	waitAdmitted(ctx, t, "image with provenance, SBOM and a clean recent scan",
		dryRunCreatePod(ctx, ns, harness.RestrictedPod("good", images[0].String())))

	const authority = " of authority " + "key-a: "
	for li, layout := range layouts {
		t.Run(string(layout), func(t *testing.T) {
			imgs := images[li*len(base) : (li+1)*len(base)]
			good, wrongBuilder, noSBOM, critical, staleScan := imgs[0], imgs[1], imgs[2], imgs[3], imgs[4]
			pod := func(n string) string { return n + "-" + string(layout) }

			_, err := createPod(t, ns, harness.RestrictedPod(pod("good"), good.String()))
			mustAdmit(t, "image with provenance, SBOM and a clean recent scan", err)

			_, err = createPod(t, ns, harness.RestrictedPod(pod("wrong-builder"), wrongBuilder.String()))
			mustDeny(t, "image built by another builder", err, "spec.containers[0].image", wrongBuilder.DigestStr(),
				"attestation provenance (https://slsa.dev/provenance/v1)"+authority+"condition false: built by "+otherBuilder,
				"required by ClusterImagePolicy e2e-attestations")

			_, err = createPod(t, ns, harness.RestrictedPod(pod("no-sbom"), noSBOM.String()))
			mustDeny(t, "image without an SBOM", err, noSBOM.DigestStr(),
				"attestation sbom (https://spdx.dev/Document)"+authority+"no attestation of this type signed by the authority")

			_, err = createPod(t, ns, harness.RestrictedPod(pod("critical"), critical.String()))
			mustDeny(t, "image whose scan has a CRITICAL finding", err, critical.DigestStr(),
				"attestation scan (https://cosign.sigstore.dev/attestation/vuln/v1)"+authority+
					"condition false: scan of "+recent.Format(time.RFC3339)+" is older than 7 days or has critical findings")

			_, err = createPod(t, ns, harness.RestrictedPod(pod("stale-scan"), staleScan.String()))
			mustDeny(t, "image whose scan is 8 days old", err, staleScan.DigestStr(),
				"attestation scan (https://cosign.sigstore.dev/attestation/vuln/v1)"+authority+
					"condition false: scan of "+stale.Format(time.RFC3339)+" is older than 7 days")
		})
	}
}

// requireAttestations makes every authority of policy p require atts.
func requireAttestations(t *testing.T, p *unstructured.Unstructured, atts []any) {
	t.Helper()
	auths, _, err := unstructured.NestedSlice(p.Object, "spec", "authorities")
	if err != nil || len(auths) == 0 {
		t.Fatalf("policy %s has no authorities (%v)", p.GetName(), err)
	}
	for _, a := range auths {
		a.(map[string]any)["attestations"] = atts
	}
	if err := unstructured.SetNestedSlice(p.Object, auths, "spec", "authorities"); err != nil {
		t.Fatal(err)
	}
}

// pushAttested pushes a random image to reg, signs it with keyA and
// attests c about it with keyA, all with the cosign CLI and both in
// c.layout (as a team using that layout would). It does not call t.Fatal
// (it runs in a goroutine of its own).
func pushAttested(t *testing.T, reg *harness.Registry, c attested) (name.Digest, error) {
	ctx := testContext(t)
	d, err := reg.PushSigned(ctx, env.Cosign, keyA, c.layout, repo(t, string(c.layout)+"/"+c.name), "v1")
	if err != nil {
		return d, err
	}
	dir := t.TempDir()
	attest := func(typ, file string, predicate any) error {
		b, err := json.Marshal(predicate)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		return env.Cosign.Attest(ctx, keyA, d, c.layout, typ, p)
	}
	if c.builder != "" {
		if err := attest("slsaprovenance1", "provenance.json", slsaProvenance(c.builder)); err != nil {
			return d, err
		}
	}
	if c.sbom {
		if err := attest("spdxjson", "sbom.spdx.json", spdxSBOM(c.name)); err != nil {
			return d, err
		}
	}
	if !c.scanned.IsZero() {
		if err := attest("vuln", "vuln.json", vulnScan(c.name, c.scanned, c.critical)); err != nil {
			return d, err
		}
	}
	return d, nil
}

// slsaProvenance is a SLSA v1 provenance predicate from builder.
func slsaProvenance(builder string) map[string]any {
	return map[string]any{
		"buildDefinition": map[string]any{
			"buildType":          "https://actions.github.io/buildtypes/workflow/v1",
			"externalParameters": map[string]any{"workflow": map[string]any{"ref": "refs/heads/main", "path": ".github/workflows/release.yml"}},
		},
		"runDetails": map[string]any{
			"builder":  map[string]any{"id": builder},
			"metadata": map[string]any{"invocationId": "https://github.com/acme/release/actions/runs/1/attempts/1"},
		},
	}
}

// spdxSBOM is a minimal SPDX 2.3 JSON document.
func spdxSBOM(app string) map[string]any {
	return map[string]any{
		"spdxVersion":       "SPDX-2.3",
		"dataLicense":       "CC0-1.0",
		"SPDXID":            "SPDXRef-DOCUMENT",
		"name":              app,
		"documentNamespace": "https://acme.example/spdx/" + app,
		"creationInfo":      map[string]any{"created": "2026-01-01T00:00:00Z", "creators": []any{"Tool: signgate-e2e"}},
		"packages": []any{map[string]any{
			"SPDXID": "SPDXRef-Package-busybox", "name": "busybox", "versionInfo": "1.36.1",
			"downloadLocation": "NOASSERTION",
		}},
	}
}

// vulnScan is cosign's vuln predicate (`cosign attest --type vuln`
// requires invocation, scanner and metadata) wrapping a Trivy-like JSON
// report as scanner.result, finished at finished: one target without
// findings, one with a HIGH finding, and a CRITICAL one when critical.
func vulnScan(app string, finished time.Time, critical bool) map[string]any {
	vulns := []any{map[string]any{
		"VulnerabilityID": "CVE-2024-0001", "PkgName": "busybox", "InstalledVersion": "1.36.1",
		"FixedVersion": "1.36.2", "Severity": "HIGH",
	}}
	if critical {
		vulns = append(vulns, map[string]any{
			"VulnerabilityID": "CVE-2024-0002", "PkgName": "openssl", "InstalledVersion": "3.0.1",
			"FixedVersion": "3.0.15", "Severity": "CRITICAL",
		})
	}
	return map[string]any{
		"invocation": map[string]any{"parameters": nil, "uri": "", "event_id": "", "builder.id": ""},
		"scanner": map[string]any{
			"uri":     "pkg:github/aquasecurity/trivy@v0.58.0",
			"version": "0.58.0",
			"db":      map[string]any{"uri": "", "version": ""},
			"result": map[string]any{
				"SchemaVersion": 2,
				"ArtifactName":  app,
				"ArtifactType":  "container_image",
				"Results": []any{
					map[string]any{"Target": "app (gobinary)", "Class": "lang-pkgs", "Type": "gobinary"},
					map[string]any{"Target": app + " (debian 12.8)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns},
				},
			},
		},
		"metadata": map[string]any{
			"scanStartedOn":  finished.Add(-time.Minute).Format(time.RFC3339),
			"scanFinishedOn": finished.Format(time.RFC3339),
		},
	}
}
