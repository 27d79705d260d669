// Package cloudhost tells which cloud's registry a host is: the host
// patterns of Amazon ECR, Google Artifact Registry and Container Registry,
// and Azure Container Registry. It has no dependencies, so that the
// configuration can check registry.cloudCredentials without linking the
// cloud SDKs (internal/cloudauth does).
package cloudhost

import (
	"regexp"
	"strings"
)

// The providers of registry.cloudCredentials.
const (
	ECR    = "ecr"
	Google = "google"
	Azure  = "azure"
)

// Names are the providers, in the order the documentation lists them.
var Names = []string{ECR, Google, Azure}

// ecrPattern is the private ECR registry host, as amazon-ecr-credential-
// helper matches it: account ID, optional FIPS endpoint, region, and the
// partition's domain. The region must have the shape of an AWS region
// (us-east-1, us-gov-west-1, cn-north-1, us-isob-east-1): a host is written
// by whoever writes a pod, and every region is an ECR client and a token.
var ecrPattern = regexp.MustCompile(`^(\d{12})\.dkr[\.\-]ecr(-fips)?\.([a-z]{2}(?:-[a-z]+)+-[0-9]+)\.(amazonaws\.com(\.cn)?|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$`)

// ECRRegistry splits a private ECR host into its account ID and region.
func ECRRegistry(host string) (account, region string, ok bool) {
	m := ecrPattern.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", "", false
	}
	return m[1], m[3], true
}

// Provider returns the cloud whose registry host is (ECR, Google or
// Azure), or "" for any other host. host is a registry host as in an image
// reference; one with a port is no cloud's.
func Provider(host string) string {
	h := strings.ToLower(host)
	if h == "" || strings.ContainsAny(h, ":/@") {
		return ""
	}
	switch {
	case ecrPattern.MatchString(h):
		return ECR
	case h == "gcr.io" || strings.HasSuffix(h, ".gcr.io"),
		strings.HasSuffix(h, "-docker.pkg.dev") && !strings.Contains(strings.TrimSuffix(h, "-docker.pkg.dev"), "."):
		return Google
	case azureRegistry(h):
		return Azure
	}
	return ""
}

// azureSuffixes are the domains of Azure Container Registry in the public
// and sovereign clouds.
var azureSuffixes = []string{".azurecr.io", ".azurecr.cn", ".azurecr.de", ".azurecr.us"}

func azureRegistry(h string) bool {
	for _, s := range azureSuffixes {
		if name, ok := strings.CutSuffix(h, s); ok && name != "" && !strings.Contains(name, ".") {
			return true
		}
	}
	return false
}

// Known reports whether name is a provider.
func Known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}

// Examples are a registry host of each provider, for messages.
var Examples = map[string]string{
	ECR:    "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
	Google: "europe-docker.pkg.dev",
	Azure:  "myregistry.azurecr.io",
}
