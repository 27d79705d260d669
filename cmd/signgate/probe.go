package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/signgate/signgate/admission"
)

// probeOptions are the flags of `signgate probe`.
type probeOptions struct {
	URL       string        // the gate's webhook base URL, https://HOST[:PORT][/PREFIX]
	CAFile    string        // PEM CAs that sign the gate's serving certificate
	CertFile  string        // client certificate, when the gate has --client-ca-file
	KeyFile   string        // its key
	Timeout   time.Duration // for each webhook call
	Namespace string        // namespace of the synthetic review
}

// probeUser is the requesting user of the probe's AdmissionReviews.
const probeUser = "signgate-probe"

// probeImage is the image of the probe's pod: pinned by digest, so that
// neither webhook resolves a tag, in a registry the gate never reaches.
// It is a loopback address, which the gate's network guard refuses
// without dialing; a gate whose registry.allowedHosts lets it through
// dials its own port 1 and finds nothing. Either way no registry traffic
// leaves the gate's host, and no policy that names real registries
// covers it: the gate answers from its configuration alone (typically a
// denial, unmatchedImages).
const probeImage = "127.0.0.1:1/signgate-probe@sha256:0000000000000000000000000000000000000000000000000000000000000000"

// probeWebhooks are the paths probed, in the order the API server calls
// them (admission.NewMux registers both).
var probeWebhooks = []string{"mutate", "validate"}

// newProbeCmd is `signgate probe`.
func newProbeCmd() *cobra.Command {
	var opts probeOptions
	cmd := &cobra.Command{
		Use:   "probe --url URL --ca-file FILE [flags]",
		Short: "Call a running gate's webhooks the way the API server does",
		Long: `Sends one AdmissionReview (admission.k8s.io/v1) to each of the gate's
webhooks, /mutate and then /validate under --url, over HTTPS verified
against --ca-file, the way the API server calls them: a dry-run CREATE of a
pod in --namespace whose one image is a loopback reference that needs no
registry (the gate's network guard refuses it). Each answer must be HTTP
200 with an AdmissionReview for the request's uid; allowed and denied are
both answers. Prints one line per webhook:

  validate: answered (denied: <first line of the message>) in 12ms

TLS verification cannot be turned off: --ca-file is the CA of the gate's
serving certificate (the chart's TLS Secret ca.crt, or webhook.caBundle),
and the URL's host must be a name the certificate is issued for. A gate
serving with --client-ca-file needs --cert-file and --key-file. The chart's
helm test runs it against the release's Service.

Exit codes: 0 both webhooks answered; 1 a webhook could not be reached or
did not answer a review (TLS, connection, HTTP status, uid, --timeout),
with what to check; 2 usage or input error (an unreadable --ca-file or
client certificate).`,
		Example: `  signgate probe --url https://signgate.signgate-system.svc:443 --ca-file /tls/ca.crt
  signgate probe --url https://127.0.0.1:8443 --ca-file ca.crt --cert-file client.crt --key-file client.key`,
		Args: noArgs("the gate is named with --url"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			base, err := opts.validate()
			if err != nil {
				return err
			}
			tlsConfig, err := opts.tlsConfig()
			if err != nil {
				return exitWith(exitUsage, err)
			}
			return exitCode(runProbe(cmd.Context(), opts, base, tlsConfig, cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("ca-file")
	cmd.MarkFlagFilename("cert-file")
	cmd.MarkFlagFilename("key-file")
	return cmd
}

func (o *probeOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.URL, "url", "", "base `URL` of the gate's webhook server, e.g. https://signgate.signgate-system.svc:443 (/mutate and /validate are appended)")
	fs.StringVar(&o.CAFile, "ca-file", "", "PEM `FILE` with the CA that signs the gate's serving certificate (required)")
	fs.StringVar(&o.CertFile, "cert-file", "", "PEM client certificate `FILE`, for a gate serving with --client-ca-file (with --key-file)")
	fs.StringVar(&o.KeyFile, "key-file", "", "PEM private key `FILE` of --cert-file")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "give up (exit 1) on a webhook that has not answered within `DURATION`")
	fs.StringVarP(&o.Namespace, "namespace", "n", "default", "`NAMESPACE` of the probe's pod (no pod is created: the review is a dry run)")
}

// validate checks the flags and returns the base URL, without a trailing
// slash.
func (o *probeOptions) validate() (*url.URL, error) {
	if o.URL == "" {
		return nil, errors.New("--url is required (the gate's webhook base URL, e.g. https://signgate.signgate-system.svc:443)")
	}
	base, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %v", o.URL, err)
	}
	if base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("--url %q: want https://HOST[:PORT] (the API server calls webhooks over HTTPS only)", o.URL)
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("--url %q: want https://HOST[:PORT][/PATH] without user, query or fragment (a webhook URL has none)", o.URL)
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	if o.CAFile == "" {
		return nil, errors.New("--ca-file is required: the PEM CA that signs the gate's serving certificate (TLS verification cannot be turned off)")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("--cert-file and --key-file go together: pass both or neither")
	}
	if o.Timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("--namespace %q: %s", o.Namespace, strings.Join(errs, "; "))
	}
	return base, nil
}

// tlsConfig reads --ca-file and the client certificate.
func (o *probeOptions) tlsConfig() (*tls.Config, error) {
	data, err := os.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read --ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificates", o.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file %s and --key-file %s: %w", o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// runProbe calls every webhook of the gate at base once, printing one line
// per answer on stdout and one per failure on stderr: exit 1 when any
// failed. Each webhook is called on its own connection, so a failure
// says what went wrong with that call.
func runProbe(ctx context.Context, opts probeOptions, base *url.URL, tlsConfig *tls.Config, stdout, stderr io.Writer) int {
	code := exitOK
	for _, webhook := range probeWebhooks {
		start := time.Now()
		answer, err := probeWebhook(ctx, opts, base, tlsConfig, webhook)
		if err != nil {
			fmt.Fprintf(stderr, "signgate probe: %s: %v\n", webhook, err)
			code = exitDenied
			continue
		}
		fmt.Fprintf(stdout, "%s: answered (%s) in %dms\n", webhook, answer, time.Since(start).Milliseconds())
	}
	return code
}

// probeWebhook sends one review to base/webhook and returns how it was
// answered ("allowed", "denied: <first line>"), or an error saying what is
// wrong and what to check.
func probeWebhook(ctx context.Context, opts probeOptions, base *url.URL, tlsConfig *tls.Config, webhook string) (string, error) {
	uid := uuid.NewUUID()
	body, err := probeReview(opts.Namespace, uid)
	if err != nil {
		return "", err
	}
	target := *base
	target.Path += "/" + webhook
	// The API server's query: the gate answers within it (less a margin).
	target.RawQuery = url.Values{"timeout": {opts.Timeout.String()}}.Encode()

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	transport := &http.Transport{TLSClientConfig: tlsConfig.Clone(), ForceAttemptHTTP2: true, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		// A webhook does not redirect; report the redirect as the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", transportProblem(ctx, opts, target.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, admission.MaxBodyBytes))
	if err != nil {
		return "", transportProblem(ctx, opts, target.Host, fmt.Errorf("read the answer: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s: HTTP %s, want 200 with an AdmissionReview (%s); check that --url is the gate's webhook port (the Service's port named webhook) and the gate's logs",
			target.Redacted(), resp.Status, firstLine(string(data), "empty body"))
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return "", fmt.Errorf("POST %s: the answer is not an AdmissionReview: %v; check that --url is the gate's webhook port", target.Redacted(), err)
	}
	if gv := review.APIVersion; gv != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return "", fmt.Errorf("POST %s: the answer is apiVersion %q kind %q, want %s AdmissionReview; check that --url is the gate's webhook port",
			target.Redacted(), gv, review.Kind, admissionv1.SchemeGroupVersion)
	}
	if review.Response == nil {
		return "", fmt.Errorf("POST %s: the AdmissionReview has no response; check that --url is the gate's webhook port", target.Redacted())
	}
	if review.Response.UID != uid {
		return "", fmt.Errorf("POST %s: the answer's uid %q is not the request's %q; the API server rejects such an answer: check that --url reaches the gate and nothing in between answers for it",
			target.Redacted(), review.Response.UID, uid)
	}
	msg := ""
	if r := review.Response.Result; r != nil {
		msg = r.Message
	}
	switch d := admission.Decision(review.Response); d {
	case "allowed":
		return d, nil
	case "error":
		return "", fmt.Errorf("POST %s: the gate answered with an internal error: %s; check the gate's logs", target.Redacted(), firstLine(msg, "no message"))
	default: // denied, undecided
		return d + ": " + firstLine(msg, "no message"), nil
	}
}

// probeReview is the AdmissionReview the API server sends for a dry-run
// CREATE of the probe's pod. The pod meets Pod Security restricted, so
// the answer is about its image.
func probeReview(namespace string, uid types.UID) ([]byte, error) {
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "signgate-probe", Namespace: namespace},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:  "probe",
				Image: probeImage,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	obj, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	k, _ := admission.KindOf("v1", "Pod")
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Request:  admission.DryRunCreate(k, namespace, pod.Name, obj, uid, probeUser),
	})
}

// transportProblem says what a failed call means and what to check.
func transportProblem(ctx context.Context, opts probeOptions, host string, err error) error {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		opErr    *net.OpError
		dnsErr   *net.DNSError
	)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s within --timeout %s: check that the Service has ready endpoints, that no NetworkPolicy drops traffic from here to the gate's webhook port (a dropped connection shows as a timeout), and the gate's logs", host, opts.Timeout)
	case errors.As(err, &unknown):
		return fmt.Errorf("the gate's serving certificate (%s) is not signed by a CA in --ca-file %s: check that --ca-file is the CA the webhook configurations' caBundle names (the chart's TLS Secret ca.crt, or webhook.caBundle)",
			certName(unknown.Cert), opts.CAFile)
	case errors.As(err, &hostname):
		return fmt.Errorf("the gate's serving certificate is not valid for %s: %v; check that --url names the Service as the certificate does (SERVICE.NAMESPACE.svc)", host, hostname)
	case errors.As(err, &invalid):
		return fmt.Errorf("the gate's serving certificate (%s) is not valid: %v; check that it has been renewed and that this machine's clock is right", certName(invalid.Cert), invalid)
	case errors.As(err, &verify):
		return fmt.Errorf("the gate's serving certificate cannot be verified with --ca-file %s: %v", opts.CAFile, verify.Err)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert from the gate: it refused our side of the handshake.
		if opts.CertFile == "" {
			return fmt.Errorf("the gate refused the TLS handshake (%v): it requires a client certificate (serve --client-ca-file, the chart's webhook.clientCA); pass --cert-file and --key-file with a certificate from that CA", opErr.Err)
		}
		return fmt.Errorf("the gate refused the client certificate --cert-file %s (%v): it must be issued by a CA in the gate's --client-ca-file for client authentication (extended key usage clientAuth)", opts.CertFile, opErr.Err)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot resolve %s: %v; check the host of --url (the Service's name and namespace, SERVICE.NAMESPACE.svc) and cluster DNS", host, dnsErr)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("cannot connect to %s: %v; check --url, that the Service has ready endpoints (kubectl get endpoints) and that no NetworkPolicy blocks this pod from the gate's webhook port", host, opErr.Err)
	}
	return fmt.Errorf("calling %s: %v; check --url, the Service, the gate's certificate and --ca-file, and any NetworkPolicy in between", host, err)
}

// certName names a certificate in a message: its subject, else its DNS
// names.
func certName(c *x509.Certificate) string {
	switch {
	case c == nil:
		return "unknown"
	case c.Subject.String() != "":
		return "subject " + c.Subject.String()
	case len(c.DNSNames) > 0:
		return "DNS names " + strings.Join(c.DNSNames, ", ")
	}
	return "no subject"
}

// firstLine is the first line of s, at most 200 characters, or empty when
// s is blank.
func firstLine(s, empty string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return empty
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}
