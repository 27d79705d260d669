//go:build !signgate_no_ecr

package cloudauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

func init() {
	register(cloudhost.ECR, func(s Settings) (Provider, error) {
		return newECR(context.Background(), s)
	})
}

// ecrProvider exchanges the gate's AWS identity for ECR registry
// credentials. The AWS SDK's default chain finds the identity: IRSA
// (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, exchanged at STS), EKS
// Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI) or the node's instance
// role; the SDK caches the AWS credentials and refreshes them before they
// expire. The endpoints follow the SDK's settings too, e.g.
// AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_ECR.
type ecrProvider struct {
	cfg aws.Config

	mu      sync.Mutex
	clients map[string]*ecr.Client // by region
}

// newECR loads the AWS configuration (environment and shared files; no
// network: credentials are obtained at the first Fetch).
func newECR(ctx context.Context, s Settings) (*ecrProvider, error) {
	opts := []func(*config.LoadOptions) error{
		// The region of STS for IRSA when the environment names none
		// (the EKS webhook sets AWS_REGION); ECR is always called in the
		// registry's region.
		config.WithDefaultRegion("us-east-1"),
	}
	switch t := s.Transport.(type) {
	case nil:
	case *http.Transport:
		// The SDK's own client, with the transport's proxy and TLS
		// settings: it adds AWS_CA_BUNDLE to it, which it refuses to do
		// to any other client.
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(bt *http.Transport) {
			bt.Proxy = t.Proxy
			if t.TLSClientConfig != nil {
				bt.TLSClientConfig = t.TLSClientConfig.Clone()
			}
		})))
	default:
		opts = append(opts, config.WithHTTPClient(&http.Client{Transport: t}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration (AWS_* environment, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE): %w", err)
	}
	return &ecrProvider{cfg: cfg, clients: map[string]*ecr.Client{}}, nil
}

func (p *ecrProvider) Name() string { return cloudhost.ECR }

// Scope implements Provider: an ECR token serves one region.
func (p *ecrProvider) Scope(host string) (string, bool) {
	_, region, ok := cloudhost.ECRRegistry(host)
	if !ok {
		return "", false
	}
	// An ECR authorization token is the gate's identity in a region: it
	// serves every registry of the region the identity may read, whatever
	// its account. One per region, not per account, also bounds the
	// exchanges a tenant can cause by naming many accounts' hosts.
	return region, true
}

// maxECRClients bounds the region clients kept: regions come from image
// names, which tenants write; beyond the bound a client is built per
// exchange (the keychain's cache makes those rare).
const maxECRClients = 32

func (p *ecrProvider) client(region string) *ecr.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients[region]
	if c == nil {
		c = ecr.NewFromConfig(p.cfg, func(o *ecr.Options) { o.Region = region })
		if len(p.clients) < maxECRClients {
			p.clients[region] = c
		}
	}
	return c
}

// Fetch implements Provider.
func (p *ecrProvider) Fetch(ctx context.Context, host string) (Token, error) {
	account, region, ok := cloudhost.ECRRegistry(host)
	if !ok {
		return Token{}, fmt.Errorf("%s is not a private Amazon ECR registry host", host)
	}
	// The AWS credentials first (cached by the SDK), to tell an identity
	// problem from an ECR one.
	if p.cfg.Credentials == nil {
		return Token{}, errNoAWSCredentials(nil)
	}
	if _, err := p.cfg.Credentials.Retrieve(ctx); err != nil {
		return Token{}, awsCredentialsError(err)
	}
	out, err := p.client(region).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "AccessDeniedException" || ae.ErrorCode() == "AccessDenied") {
			return Token{}, fmt.Errorf("ECR in %s denied GetAuthorizationToken (%s: %s): allow ecr:GetAuthorizationToken, and pulling from the repositories of account %s, to the gate's IAM role", region, ae.ErrorCode(), ae.ErrorMessage(), account)
		}
		return Token{}, fmt.Errorf("ECR GetAuthorizationToken in %s: %w", region, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return Token{}, fmt.Errorf("ECR GetAuthorizationToken in %s returned no authorization data", region)
	}
	d := out.AuthorizationData[0]
	// The token is base64 of "AWS:password"; no error below quotes it.
	raw, err := base64.StdEncoding.DecodeString(*d.AuthorizationToken)
	if err != nil {
		return Token{}, fmt.Errorf("ECR GetAuthorizationToken in %s returned a malformed authorization token (not base64)", region)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Token{}, fmt.Errorf("ECR GetAuthorizationToken in %s returned a malformed authorization token (not user:password)", region)
	}
	tok := Token{Username: user, Password: pass}
	if d.ExpiresAt != nil {
		tok.Expires = *d.ExpiresAt
	}
	return tok, nil
}

// awsCredentialsError explains a failure of the SDK's credential chain
// by the identity the environment configures.
func awsCredentialsError(err error) error {
	var oe *smithy.OperationError
	var ae smithy.APIError
	roleARN := os.Getenv("AWS_ROLE_ARN")
	switch {
	case errors.As(err, &oe) && oe.ServiceID == "STS" && errors.As(err, &ae):
		return fmt.Errorf("AWS STS refused the IRSA exchange (%s) for role %q (%s: %s): check that the role's trust policy allows the cluster's OIDC provider and the gate's service account, and the eks.amazonaws.com/role-arn annotation", oe.OperationName, roleARN, ae.ErrorCode(), ae.ErrorMessage())
	case os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "":
		return fmt.Errorf("IRSA credentials for role %q: %w", roleARN, err)
	case os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" || os.Getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "":
		return fmt.Errorf("EKS Pod Identity credentials: %w (check the Pod Identity association of the gate's service account and that the eks-pod-identity-agent runs on the node)", err)
	}
	return errNoAWSCredentials(err)
}

func errNoAWSCredentials(err error) error {
	const msg = "no AWS credentials: set up IRSA (eks.amazonaws.com/role-arn on the gate's service account) or EKS Pod Identity (an association for the gate's service account), or give the node an instance role allowing ecr:GetAuthorizationToken"
	if err == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
