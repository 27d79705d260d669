// Package pullsecrets gives an admission review its namespace's registry
// credentials, as the kubelet would pull with them: the pod's
// imagePullSecrets and its service account's, read from the pod's
// namespace (never another's), as a verifier.Credential whose keychain is
// go-containerregistry's pkg/authn/kubernetes (docker config and dockercfg
// Secrets, host and path matching as the kubelet does).
//
// Secrets and service accounts are read with GET and cached (a success
// for TTL, a miss or failure for FailureTTL): no API call per review in
// steady state, and the gate needs only get on Secrets and
// ServiceAccounts, not a cluster-wide watch of every Secret.
package pullsecrets

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	lru "github.com/hashicorp/golang-lru/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/signgate/signgate/verifier"
)

// MaxPullSecrets is how many pull secret names (the pod's, then its
// service account's) one review reads: a pod naming thousands would
// otherwise cost the gate thousands of API reads. Names past it are not
// read; their credentials are not used, so an image only they could read
// is denied, never admitted.
const MaxPullSecrets = 32

// Options tune a Source; zero values take the defaults.
type Options struct {
	// TTL is how long a Secret or ServiceAccount read is reused: a
	// rotated pull secret applies within it. Default 30s.
	TTL time.Duration
	// FailureTTL is how long a missing object or a failed read is
	// reused. Default 5s.
	FailureTTL time.Duration
	// Timeout bounds one API read. Default 5s.
	Timeout time.Duration
	// MaxEntries bounds each cache (Secrets, ServiceAccounts, built
	// keychains). Default 4096.
	MaxEntries int
}

// Source is an admission.CredentialSource over the Kubernetes API. Safe
// for concurrent use.
type Source struct {
	kube kubernetes.Interface
	opts Options
	now  func() time.Time

	secrets  *lru.Cache[objKey, entry[*corev1.Secret]]
	accounts *lru.Cache[objKey, entry[*corev1.ServiceAccount]]
	creds    *lru.Cache[string, *verifier.Credential]
}

type objKey struct{ namespace, name string }

// entry is one read: the object, nil when it does not exist, or the
// error of the read; until expires.
type entry[T any] struct {
	obj     T
	err     error
	expires time.Time
}

// New returns a Source reading with kube.
func New(kube kubernetes.Interface, opts Options) *Source {
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4096
	}
	secrets, _ := lru.New[objKey, entry[*corev1.Secret]](opts.MaxEntries) // cannot fail: size > 0
	accounts, _ := lru.New[objKey, entry[*corev1.ServiceAccount]](opts.MaxEntries)
	creds, _ := lru.New[string, *verifier.Credential](opts.MaxEntries)
	return &Source{kube: kube, opts: opts, now: time.Now, secrets: secrets, accounts: accounts, creds: creds}
}

// Credential returns the registry credentials of a pod in namespace that
// runs as serviceAccount ("" is "default") and names pullSecrets: the
// pod's pull secrets, then the service account's, each read from
// namespace. Names that do not exist are skipped, as the kubelet skips
// them; nil when none is left. An error means the API could not be read
// (or a Secret is not a valid docker config): the caller cannot know
// which credentials the pod has.
func (s *Source) Credential(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (*verifier.Credential, error) {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	names := slices.Clone(pullSecrets)
	sa, err := get(ctx, s, s.accounts, namespace, serviceAccount, func(ctx context.Context) (*corev1.ServiceAccount, error) {
		return s.kube.CoreV1().ServiceAccounts(namespace).Get(ctx, serviceAccount, metav1.GetOptions{})
	})
	if err != nil {
		return nil, fmt.Errorf("service account %s/%s: %w", namespace, serviceAccount, err)
	}
	fromAccount := false
	if sa != nil {
		for _, r := range sa.ImagePullSecrets {
			if r.Name != "" && !slices.Contains(names, r.Name) {
				names, fromAccount = append(names, r.Name), true
			}
		}
	}
	if len(names) > MaxPullSecrets {
		names = names[:MaxPullSecrets]
	}
	var (
		found []corev1.Secret
		used  []string
		key   strings.Builder
	)
	key.WriteString(namespace)
	for _, n := range names {
		if slices.Contains(used, n) {
			continue
		}
		sec, err := get(ctx, s, s.secrets, namespace, n, func(ctx context.Context) (*corev1.Secret, error) {
			return s.kube.CoreV1().Secrets(namespace).Get(ctx, n, metav1.GetOptions{})
		})
		if err != nil {
			return nil, fmt.Errorf("imagePullSecret %s/%s: %w", namespace, n, err)
		}
		if sec == nil {
			continue
		}
		found, used = append(found, *sec), append(used, n)
		key.WriteString("\x00" + n + "\x00" + sec.ResourceVersion + "\x00" + string(sec.UID))
	}
	if len(found) == 0 {
		return nil, nil
	}
	if c, ok := s.creds.Get(key.String()); ok {
		return c, nil
	}
	kc, err := kauth.NewFromPullSecrets(ctx, found)
	if err != nil {
		return nil, fmt.Errorf("imagePullSecrets %s of namespace %s: not a docker config: %w", quoted(used), namespace, err)
	}
	name := fmt.Sprintf("imagePullSecrets %s of namespace %s", quoted(used), namespace)
	if fromAccount {
		name += fmt.Sprintf(" (with service account %s's)", serviceAccount)
	}
	c := &verifier.Credential{Keychain: kc, Name: name}
	s.creds.Add(key.String(), c)
	return c, nil
}

// get returns the cached read of namespace/name, or reads it with read:
// nil for an object that does not exist.
func get[T any](ctx context.Context, s *Source, c *lru.Cache[objKey, entry[*T]], namespace, name string, read func(context.Context) (*T, error)) (*T, error) {
	k := objKey{namespace, name}
	now := s.now()
	if e, ok := c.Get(k); ok && now.Before(e.expires) {
		return e.obj, e.err
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	obj, err := read(rctx)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, err // the caller gave up: says nothing about the object
	case apierrors.IsNotFound(err):
		c.Add(k, entry[*T]{expires: now.Add(s.opts.FailureTTL)})
		return nil, nil
	case apierrors.IsForbidden(err):
		err = fmt.Errorf("forbidden: the gate needs get on Secrets and ServiceAccounts in every namespace (registryCredentials.podPullSecrets in the chart grants it): %w", err)
		c.Add(k, entry[*T]{err: err, expires: now.Add(s.opts.FailureTTL)})
		return nil, err
	case err != nil:
		c.Add(k, entry[*T]{err: err, expires: now.Add(s.opts.FailureTTL)})
		return nil, err
	}
	c.Add(k, entry[*T]{obj: obj, expires: now.Add(s.opts.TTL)})
	return obj, nil
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
