package cloudhost

import "testing"

func TestProvider(t *testing.T) {
	for host, want := range map[string]string{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com":      ECR,
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com": ECR,
		"123456789012.dkr-ecr.us-east-1.amazonaws.com":      ECR,
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":  ECR,
		"123456789012.DKR.ECR.eu-west-1.amazonaws.com":      ECR,
		"12345678901.dkr.ecr.eu-west-1.amazonaws.com":       "", // 11 digits
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil": "",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com:443":  "",
		"public.ecr.aws":                     "",
		"gcr.io":                             Google,
		"eu.gcr.io":                          Google,
		"europe-docker.pkg.dev":              Google,
		"us-central1-docker.pkg.dev":         Google,
		"evil.example-docker.pkg.dev":        "",
		"gcr.io.evil.example":                "",
		"evilgcr.io":                         "",
		"myregistry.azurecr.io":              Azure,
		"myregistry.azurecr.cn":              Azure,
		"a.b.azurecr.io":                     "",
		".azurecr.io":                        "",
		"azurecr.io":                         "",
		"myregistry.azurecr.io.evil.example": "",
		"docker.io":                          "",
		"127.0.0.1:5000":                     "",
		"":                                   "",
	} {
		if got := Provider(host); got != want {
			t.Errorf("Provider(%q) = %q, want %q", host, got, want)
		}
	}
	for name, host := range Examples {
		if got := Provider(host); got != name {
			t.Errorf("example %q of %s is %q", host, name, got)
		}
	}
}

func TestECRRegistry(t *testing.T) {
	acct, region, ok := ECRRegistry("123456789012.dkr.ecr.eu-west-1.amazonaws.com")
	if !ok || acct != "123456789012" || region != "eu-west-1" {
		t.Fatalf("ECRRegistry = %q %q %v", acct, region, ok)
	}
	if _, _, ok := ECRRegistry("gcr.io"); ok {
		t.Fatal("gcr.io is an ECR registry")
	}
}
