//go:build e2e

package harness

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// APIServer is a kube-apiserver on loopback backed by an Etcd. It has no
// controllers: namespaces get no default ServiceAccount unless the caller
// creates one (Env.CreateNamespace does).
type APIServer struct {
	URL        string // https://127.0.0.1:PORT
	Token      string // bearer token of user "admin" in group system:masters
	CAPEM      []byte // trust anchor for URL's serving certificate
	Kubeconfig string // file with URL, CA and token; context "e2e"
	Proc       *Process
}

// StartAPIServer starts bin against etcdURL and waits until /readyz
// answers. Its serving certificate is issued by ca.
func StartAPIServer(ctx context.Context, tb TB, bin, dir, etcdURL string, ca *CA) (*APIServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	saPub, saKey, err := writeServiceAccountKeys(dir)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, err := ca.WriteServingPair(dir, "kube-apiserver")
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "apiserver-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	p, err := startProcess(tb, dir, procSpec{
		name: "kube-apiserver",
		bin:  bin,
		args: []string{
			"--etcd-servers=" + etcdURL,
			"--etcd-prefix=/registry",
			"--service-account-key-file=" + saPub,
			"--service-account-signing-key-file=" + saKey,
			"--service-account-issuer=https://kubernetes.default.svc",
			"--token-auth-file=" + tokens,
			"--authorization-mode=RBAC",
			"--secure-port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// Nothing runs behind the kubernetes Service here, and the
			// reconciler refuses a loopback advertise address.
			"--endpoint-reconciler-type=none",
			"--cert-dir=" + certDir,
			"--tls-cert-file=" + certFile,
			"--tls-private-key-file=" + keyFile,
			"--service-cluster-ip-range=10.0.0.0/24",
			// Without it the API server itself refuses privileged
			// containers before any webhook sees them; the suite wants
			// signgate's Pod Security answer.
			"--allow-privileged=true",
			// The built-in Pod Security Admission plugin runs before the
			// webhooks and would answer first in labelled namespaces; off,
			// every Pod Security decision the suite sees is signgate's.
			"--disable-admission-plugins=PodSecurity",
		},
		// SIGTERM makes kube-apiserver wait out its shutdown delays (>30s).
		grace: 2 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	a := &APIServer{
		URL:        "https://127.0.0.1:" + strconv.Itoa(port),
		Token:      token,
		CAPEM:      ca.CertPEM,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Proc:       p,
	}
	if err := a.writeKubeconfig(); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	err = p.waitReady(ctx, func(ctx context.Context) error {
		return httpOK(ctx, hc, a.URL+"/readyz", token)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// RESTConfig returns a fresh client configuration for the admin user.
func (a *APIServer) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            a.URL,
		BearerToken:     a.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: a.CAPEM},
		QPS:             100,
		Burst:           200,
		// A hang guard per request, not a latency budget: with a 30 s
		// webhook deadline a request can legitimately take longer than that.
		Timeout: hangGuard,
	}
}

func (a *APIServer) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: a.URL, CertificateAuthorityData: a.CAPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: a.Token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*cfg, a.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
