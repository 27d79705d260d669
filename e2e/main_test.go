//go:build e2e

// Package e2e runs signgate against a real kube-apiserver, etcd, the CNCF
// distribution registry and the cosign CLI (see e2e/harness). One
// environment is shared by the whole suite; every test works in namespaces
// and repositories of its own, so tests can run in parallel. The tests
// that stop a registry or time a policy change do not run in parallel.
//
//	make e2e     # builds bin/signgate and the tools, then go test -tags e2e ./e2e/...
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/signgate/signgate/e2e/harness"
)

// Shared by all tests; set up once in TestMain.
var (
	env *harness.Env
	// keyA and keyB are two cosign key pairs made by the real CLI.
	keyA, keyB harness.KeyPair
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	s, err := harness.NewSession(os.Stderr, "signgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	ctx := context.Background()
	t0 := time.Now()
	// Registry 0 is shared; registry 1 belongs to TestRegistryOutage,
	// which stops it; env.Private needs a password (TestPullSecrets). The
	// gate reads registries with the pods' pull secrets.
	env, err = harness.Start(ctx, s, harness.Options{Registries: 2, PrivateRegistry: true, PodPullSecrets: true})
	if err == nil {
		keyA, err = env.Cosign.GenerateKeyPair(ctx, env.Dir, "key-a")
	}
	if err == nil {
		keyB, err = env.Cosign.GenerateKeyPair(ctx, env.Dir, "key-b")
	}
	if err != nil {
		s.Fail()
		fmt.Fprintf(os.Stderr, "e2e: start environment: %v\n", err)
		return 1
	}
	s.Logf("e2e: environment up in %s (logs in %s)", time.Since(t0).Round(time.Millisecond), env.Dir)
	code := m.Run()
	if code != 0 {
		s.Fail()
	}
	return code
}
