//go:build !signgate_no_azure

package cloudauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/signgate/signgate/internal/cloudauth/cloudhost"
)

func init() {
	register(cloudhost.Azure, func(s Settings) (Provider, error) {
		return newAzure(s, azureOptions{})
	})
}

const (
	// acrScope is the Microsoft Entra scope of Azure Container Registry's
	// own audience. It is the same in the sovereign clouds (the Azure SDK's
	// azcontainerregistry uses https://containerregistry.azure.net in
	// every cloud); the sovereign cloud is chosen by the authority host
	// (AZURE_AUTHORITY_HOST, which the AKS webhook sets).
	acrScope = "https://containerregistry.azure.net/.default"
	// acrUsername is the user name that goes with an ACR refresh token.
	acrUsername = "00000000-0000-0000-0000-000000000000"
	// maxExchangeResponse bounds the registry's answer to the exchange.
	maxExchangeResponse = 1 << 20

	// The environment of Microsoft Entra Workload ID, as the AKS webhook
	// injects it.
	envAzureClientID       = "AZURE_CLIENT_ID"
	envAzureTenantID       = "AZURE_TENANT_ID"
	envAzureFederatedToken = "AZURE_FEDERATED_TOKEN_FILE"

	workloadIdentityHint = `label the gate's pods azure.workload.identity/use: "true" and annotate its service account with azure.workload.identity/client-id (the client ID of an identity whose federated credential trusts the service account)`
)

// azureOptions are what tests change.
type azureOptions struct {
	// disableInstanceDiscovery skips Microsoft Entra instance discovery
	// (which asks login.microsoftonline.com about an authority host it
	// does not know, such as a test's).
	disableInstanceDiscovery bool
	// exchangeURL is the URL of a registry's token exchange. Default
	// https://<host>/oauth2/exchange.
	exchangeURL func(host string) string
}

// azureProvider exchanges a Microsoft Entra access token of the gate's
// workload identity (or managed identity) for an ACR refresh token.
type azureProvider struct {
	cred        azcore.TokenCredential
	workload    bool   // cred is the workload identity, else the managed identity
	tenant      string // the workload identity's tenant, sent with the exchange
	client      *http.Client
	exchangeURL func(host string) string
}

func newAzure(s Settings, o azureOptions) (*azureProvider, error) {
	transport := s.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	p := &azureProvider{
		client: &http.Client{
			Transport: transport,
			// The exchange carries an access token: never to another URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		exchangeURL: o.exchangeURL,
	}
	if p.exchangeURL == nil {
		p.exchangeURL = func(host string) string { return "https://" + host + "/oauth2/exchange" }
	}
	var co azcore.ClientOptions
	if s.Transport != nil {
		co.Transport = &http.Client{Transport: s.Transport}
	}

	if os.Getenv(envAzureFederatedToken) == "" {
		// No workload identity: the managed identity of the node (IMDS) or
		// of the service (AZURE_CLIENT_ID selects a user-assigned one).
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if id := os.Getenv(envAzureClientID); id != "" {
			mo.ID = azidentity.ClientID(id)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, fmt.Errorf("no Azure workload identity (%s is not set) and no managed identity: %v; %s", envAzureFederatedToken, err, workloadIdentityHint)
		}
		p.cred = cred
		return p, nil
	}
	for _, v := range []string{envAzureClientID, envAzureTenantID} {
		if os.Getenv(v) == "" {
			return nil, fmt.Errorf("Azure workload identity is incomplete: %s is set but %s is not; %s", envAzureFederatedToken, v, workloadIdentityHint)
		}
	}
	cred, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
		ClientOptions:            co,
		DisableInstanceDiscovery: o.disableInstanceDiscovery,
	})
	if err != nil {
		return nil, fmt.Errorf("Azure workload identity: %v; %s", err, workloadIdentityHint)
	}
	p.cred, p.workload, p.tenant = cred, true, os.Getenv(envAzureTenantID)
	return p, nil
}

func (p *azureProvider) Name() string { return cloudhost.Azure }

// Scope implements Provider: an ACR refresh token serves one registry.
func (p *azureProvider) Scope(host string) (string, bool) {
	if cloudhost.Provider(host) != cloudhost.Azure {
		return "", false
	}
	return strings.ToLower(host), true
}

// Fetch implements Provider.
func (p *azureProvider) Fetch(ctx context.Context, host string) (Token, error) {
	host = strings.ToLower(host)
	at, err := p.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{acrScope}})
	if err != nil {
		if p.workload {
			return Token{}, fmt.Errorf("Microsoft Entra access token of the workload identity %s: %w; check that the identity has a federated credential for the gate's service account (issuer: the cluster's OIDC issuer, subject: system:serviceaccount:<namespace>:<service account>)", os.Getenv(envAzureClientID), err)
		}
		return Token{}, fmt.Errorf("no Azure workload identity (%s is not set) and the managed identity failed: %w; %s, or give the nodes a managed identity with AcrPull on the registry", envAzureFederatedToken, err, workloadIdentityHint)
	}
	if at.Token == "" {
		return Token{}, errors.New("Microsoft Entra returned an empty access token")
	}
	refresh, err := p.exchange(ctx, host, at.Token)
	if err != nil {
		return Token{}, err
	}
	tok := Token{Username: acrUsername, Password: refresh, Expires: at.ExpiresOn}
	if exp, ok := jwtExpiry(refresh); ok {
		tok.Expires = exp
	}
	return tok, nil
}

// exchange trades an Entra access token for the registry's refresh token.
func (p *azureProvider) exchange(ctx context.Context, host, accessToken string) (string, error) {
	u := p.exchangeURL(host)
	form := url.Values{
		"grant_type":   {"access_token"},
		"service":      {host},
		"access_token": {accessToken},
	}
	if p.tenant != "" {
		form.Set("tenant", p.tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("ACR token exchange at %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("ACR token exchange at %s: %w", u, redactErr(err, accessToken))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExchangeResponse+1))
	if err != nil {
		return "", fmt.Errorf("ACR token exchange at %s: reading the answer: %w", u, redactErr(err, accessToken))
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("ACR token exchange at %s: %s", u, resp.Status)
		if s := exchangeErrorText(body, accessToken); s != "" {
			msg += ": " + s
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += "; grant the gate's Azure identity a role that can pull from the registry (AcrPull), and check that the registry allows Microsoft Entra authentication"
		case http.StatusNotFound:
			msg += "; check that the registry exists"
		}
		return "", errors.New(msg)
	}
	if len(body) > maxExchangeResponse {
		return "", fmt.Errorf("ACR token exchange at %s: the answer exceeds %d bytes", u, maxExchangeResponse)
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("ACR token exchange at %s: the answer is not JSON: %v", u, err)
	}
	if out.RefreshToken == "" {
		return "", fmt.Errorf("ACR token exchange at %s: the answer has no refresh_token", u)
	}
	return out.RefreshToken, nil
}

// exchangeErrorText is a bounded, printable excerpt of the registry's
// error answer, without the access token.
func exchangeErrorText(body []byte, accessToken string) string {
	const max = 512
	s := string(body)
	if accessToken != "" {
		s = strings.ReplaceAll(s, accessToken, "[redacted]")
	}
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// redactErr drops the access token from a transport error (which should
// never contain it: the token is in the request's body).
func redactErr(err error, accessToken string) error {
	if accessToken != "" && strings.Contains(err.Error(), accessToken) {
		return errors.New(strings.ReplaceAll(err.Error(), accessToken, "[redacted]"))
	}
	return err
}

// jwtExpiry reads the exp claim of a JWT without verifying it: it only
// schedules the refresh.
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Float64()
	if err != nil || exp <= 0 || exp > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(exp), 0), true
}
