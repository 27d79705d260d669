package admission

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/signgate/signgate/verifier"
)

// CredentialSource gives a review the registry credentials of its
// namespace, as the kubelet would pull with them: the pod's
// imagePullSecrets and its service account's. A nil Credential means the
// namespace has none: the gate's own credentials are used. An error means
// they could not be read (the review is then undecided).
type CredentialSource interface {
	Credential(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (*verifier.Credential, error)
}

// credentialVerifier reads registries with a caller's credentials
// (*verifier.Verifier), caching what they learn for them alone.
type credentialVerifier interface {
	ResolveWith(ctx context.Context, ref name.Reference, cred *verifier.Credential) (name.Digest, error)
	VerifyWith(ctx context.Context, d name.Digest, set verifier.AuthoritySet, cred *verifier.Credential) (verifier.Result, error)
	ResolveCachedWith(ref name.Reference, cred *verifier.Credential) (name.Digest, bool)
	CachedWith(d name.Digest, set verifier.AuthoritySet, cred *verifier.Credential) (verifier.Result, bool, error)
}

// reads is how one review reads registries: the gate's verifier, bound
// to the review's credentials when it has any.
type reads struct {
	verifier Verifier
	cached   cachedVerifier // nil: ask verifier for everything
}

// boundVerifier is a credentialVerifier bound to one credential: a
// Verifier and cachedVerifier for one review.
type boundVerifier struct {
	v    credentialVerifier
	cred *verifier.Credential
}

func (b boundVerifier) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	return b.v.ResolveWith(ctx, ref, b.cred)
}

func (b boundVerifier) Verify(ctx context.Context, d name.Digest, set verifier.AuthoritySet) (verifier.Result, error) {
	return b.v.VerifyWith(ctx, d, set, b.cred)
}

func (b boundVerifier) ResolveCached(ref name.Reference) (name.Digest, bool) {
	return b.v.ResolveCachedWith(ref, b.cred)
}

func (b boundVerifier) Cached(d name.Digest, set verifier.AuthoritySet) (verifier.Result, bool, error) {
	return b.v.CachedWith(d, set, b.cred)
}

// readsFor is how a review in namespace with pod spec reads registries:
// with the pod's and its service account's pull secrets when the gate has
// a CredentialSource, else with the gate's own credentials.
func (g *Gate) readsFor(ctx context.Context, namespace string, spec *corev1.PodSpec) (reads, error) {
	own := reads{verifier: g.verifier, cached: g.cached}
	if g.credentials == nil || spec == nil {
		return own, nil
	}
	names := make([]string, 0, len(spec.ImagePullSecrets))
	for _, s := range spec.ImagePullSecrets {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	cred, err := g.credentials.Credential(ctx, namespace, spec.ServiceAccountName, names)
	if err != nil || cred == nil {
		return own, err
	}
	b := boundVerifier{v: g.credVerifier, cred: cred}
	return reads{verifier: b, cached: b}, nil
}

// accessDenied says that the registry denied read access to repo, with
// which credentials (cred: a Credential's name; "" the gate's own), and
// what to do: an imagePullSecret when reviews read with their
// namespace's pull secrets, else credentials for the gate.
func (g *Gate) accessDenied(repo, cred string) string {
	switch {
	case cred != "":
		return fmt.Sprintf("the registry denied read access to %s with %s; add an imagePullSecret that can read it", repo, cred)
	case g.credentials != nil:
		return fmt.Sprintf("the registry denied signgate read access to %s (no imagePullSecret of the pod or its service account has credentials for it; the gate's own were tried); add an imagePullSecret that can read it", repo)
	}
	return fmt.Sprintf("the registry denied signgate read access to %s; give signgate credentials that can read %s (registry credentials of the gate, docs/helm.md)", repo, repo)
}

// registryProblem is registryProblem with the gate's remedies; when
// reviews read with their namespace's pull secrets, a registry that
// denied the gate's own credentials asks for an imagePullSecret.
func (g *Gate) registryProblem(host string, err error) string {
	var denied *verifier.AccessDeniedError
	if g.credentials != nil && errors.As(err, &denied) && denied.Credential == "" {
		return fmt.Sprintf("registry %s denied access (HTTP %d) with the gate's own credentials (no imagePullSecret of the pod or its service account has credentials for it); add an imagePullSecret that can read it", host, denied.StatusCode)
	}
	return registryProblem(host, err, g.remedies)
}
