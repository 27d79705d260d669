package policy

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	psapi "k8s.io/pod-security-admission/api"
)

// updateConfigGolden rewrites testdata/config/invalid/*.golden. Its name is
// specific so it cannot clash with other flags of this package's tests.
var updateConfigGolden = flag.Bool("update-config", false, "rewrite the golden files of TestParseConfigErrors")

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	want := &Config{
		APIVersion:      "signgate.dev/v1alpha1",
		Kind:            "GateConfiguration",
		UnmatchedImages: UnmatchedDeny,
		PodSecurity: PodSecurityConfig{
			Defaults: PodSecurityDefaults{
				Enforce: "restricted", EnforceVersion: "latest",
				Warn: "restricted", WarnVersion: "latest",
				Audit: "restricted", AuditVersion: "latest",
			},
			Workloads: ModeEnforce,
		},
		Cache:    CacheConfig{MaxEntries: 10000, TTL: 10 * time.Minute, FailureTTL: 30 * time.Second, TagTTL: 15 * time.Second},
		Registry: RegistryConfig{Timeout: 5 * time.Second, MaxManifestBytes: 4 << 20},
	}
	minimal := mustReadFile(t, "testdata/config/valid/minimal.yaml")
	parsed, err := ParseConfig(minimal)
	if err != nil {
		t.Fatalf("ParseConfig(minimal): %v", err)
	}
	for name, got := range map[string]*Config{"DefaultConfig": DefaultConfig(), "ParseConfig(minimal)": parsed} {
		if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Config{}, RegistryConfig{})); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
		}
		if got.Registry.BlockedPrefixes() != nil {
			t.Errorf("%s: BlockedPrefixes() = %v, want nil (verifier default)", name, got.Registry.BlockedPrefixes())
		}
		levels, err := got.Levels(nil)
		restrictedLatest := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
		if err != nil || levels != (Levels{Enforce: restrictedLatest, Warn: restrictedLatest, Audit: restrictedLatest}) {
			t.Errorf("%s: Levels(nil) = %v, %v; want restricted:latest everywhere", name, levels, err)
		}
	}
}

func TestParseConfigExample(t *testing.T) {
	t.Parallel()
	got, err := ParseConfig(mustReadFile(t, "testdata/config/valid/example.yaml"))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	want := &Config{
		APIVersion:       "signgate.dev/v1alpha1",
		Kind:             "GateConfiguration",
		UnmatchedImages:  UnmatchedWarn,
		ExemptNamespaces: []string{"kube-system"},
		PodSecurity: PodSecurityConfig{
			Defaults: PodSecurityDefaults{
				Enforce: "baseline", EnforceVersion: "v1.30",
				Warn: "restricted", WarnVersion: "latest",
				Audit: "restricted", AuditVersion: "latest",
			},
			Exemptions: PodSecurityExemptions{
				Usernames:      []string{"system:serviceaccount:ci:deployer"},
				RuntimeClasses: []string{"kata"},
				Namespaces:     []string{"legacy"},
			},
			Workloads: ModeWarn,
		},
		HardeningChecks: []HardeningRule{
			{Check: CheckReadOnlyRootFilesystem, Mode: ModeEnforce, NamespaceSelector: &LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
			{Check: CheckRuntimeClass, Mode: ModeWarn, Allowed: []string{"gvisor", "kata"}},
			{Check: CheckResourceLimits, Mode: ModeEnforce, NamespaceSelector: &LabelSelector{
				MatchExpressions: []LabelSelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"batch", "web"}}},
			}},
		},
		Policies: PoliciesConfig{NamespacePoliciesCoverImages: true},
		Pinning:  PinningConfig{WorkloadTemplates: true},
		Cache:    CacheConfig{MaxEntries: 500, TTL: 5 * time.Minute, FailureTTL: 10 * time.Second, TagTTL: time.Minute},
		Registry: RegistryConfig{
			Timeout:            3 * time.Second,
			MaxManifestBytes:   1 << 20,
			InsecureRegistries: []string{"127.0.0.1:5000"},
			AllowedHosts:       []string{"registry.kube-system.svc.cluster.local"},
			BlockedNetworks:    []string{"169.254.0.0/16", "10.1.2.3/8"},
			Proxy:              "http://proxy.kube-system.svc:3128",
			TokenRealms:        []TokenRealm{{Registry: "registry.corp.example", Realm: "sso.corp.example"}},
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Config{}, RegistryConfig{}, HardeningRule{})); diff != "" {
		t.Errorf("ParseConfig mismatch (-want +got):\n%s", diff)
	}
	wantPrefixes := []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")}
	if diff := cmp.Diff(wantPrefixes, got.Registry.BlockedPrefixes(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("BlockedPrefixes mismatch (-want +got):\n%s", diff)
	}
	levels, err := got.Levels(map[string]string{"team": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := levels.Enforce.String(), "baseline:v1.30"; got != want {
		t.Errorf("Levels().Enforce = %s, want %s", got, want)
	}
	if !got.Exempt("kube-system") || got.Exempt("default") || !got.Exempt("signgate-system", "signgate-system") {
		t.Errorf("Exempt() does not follow exemptNamespaces plus the gate's namespace")
	}
}

func TestBlockedNetworks(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry:\n  timeout: 5s\n"
	tests := []struct {
		name string
		yaml string
		want []netip.Prefix
	}{
		{name: "absent keeps the verifier default", yaml: head, want: nil},
		{name: "null keeps the verifier default", yaml: head + "  blockedNetworks: ~\n", want: nil},
		{name: "empty list blocks nothing", yaml: head + "  blockedNetworks: []\n", want: []netip.Prefix{}},
		{name: "CIDRs are masked", yaml: head + "  blockedNetworks: [127.0.0.1/8, \"fe80::1/10\"]\n", want: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fe80::/10")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Registry.BlockedPrefixes()
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("BlockedPrefixes() = %#v, want %#v", got, tt.want)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("BlockedPrefixes() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryProxy(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\nregistry:\n  proxy: "
	tests := []struct {
		proxy   string
		want    string // ProxyURL().String(), "" for nil
		wantErr string
	}{
		{proxy: `""`, want: ""},
		{proxy: "http://proxy.example:3128", want: "http://proxy.example:3128"},
		{proxy: "https://10.0.0.1", want: "https://10.0.0.1"},
		{proxy: "http://[fd00::1]:8080/", want: "http://[fd00::1]:8080"},
		{proxy: "proxy.example:3128", wantErr: "scheme must be http or https"},
		{proxy: "socks5://proxy.example:1080", wantErr: "scheme must be http or https"},
		{proxy: "http://user:pass@proxy.example:3128", wantErr: "credentials in the URL are not supported"},
		{proxy: "http://:3128", wantErr: "no host"},
		{proxy: "http://proxy.example:3128/path", wantErr: "want only scheme, host and port"},
		{proxy: "http://proxy.example:3128?x=1", wantErr: "want only scheme, host and port"},
		{proxy: "http://proxy.example:99999", wantErr: "port must be 1-65535"},
		{proxy: "http://proxy example", wantErr: "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.proxy, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(head + tt.proxy + "\n"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "registry.proxy: must be a proxy URL such as http://proxy.example:3128") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want registry.proxy error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if u := c.Registry.ProxyURL(); u != nil {
				got = u.String()
			}
			if got != tt.want {
				t.Errorf("ProxyURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseConfigErrors checks every error message word for word against
// testdata/config/invalid/<name>.golden (go test -run TestParseConfigErrors
// ./policy/ -update-config rewrites them).
func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/config/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(mustReadFile(t, file))
			if err == nil {
				t.Fatal("ParseConfig succeeded, want an error")
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *updateConfigGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(string(mustReadFile(t, golden)), got); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseConfig feeds arbitrary YAML to the parser: it must not panic, and
// whatever it accepts must be valid.
func FuzzParseConfig(f *testing.F) {
	for _, file := range []string{"testdata/config/valid/example.yaml", "testdata/config/invalid/bad_values.yaml", "testdata/config/invalid/unknown_in_list.yaml", "testdata/config/invalid/registry_cas.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if errs := c.validate(); len(errs) > 0 {
			t.Fatalf("accepted configuration fails validation: %v", errs)
		}
	})
}

func mustReadFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestTagTTLZeroDisables(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\ncache: {tagTTL: 0s}\n"))
	if err != nil {
		t.Fatalf("tagTTL: 0 must be accepted (it disables the tag cache): %v", err)
	}
	if cfg.Cache.TagTTL != 0 {
		t.Errorf("TagTTL = %s, want 0", cfg.Cache.TagTTL)
	}
	_, err = ParseConfig([]byte("apiVersion: signgate.dev/v1alpha1\nkind: GateConfiguration\ncache: {tagTTL: -1s}\n"))
	if err == nil || !strings.Contains(err.Error(), "cache.tagTTL") {
		t.Errorf("tagTTL: -1s: err = %v, want an error naming cache.tagTTL", err)
	}
}
