# signgate — build, test and run.
#
# Tools are pinned here and built into bin/ once; a stamp file per tool and
# version lets later runs skip what is already built at the pinned version.

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
STAMP := $(BIN)/.stamp

KUBE_VERSION           := v1.37.2
ETCD_VERSION           := v3.6.16
COSIGN_VERSION         := v2.6.5
GGCR_VERSION           := v0.22.1
HELM_VERSION           := v3.22.0
CONTROLLER_GEN_VERSION := v0.23.0
STATICCHECK_VERSION    := v0.8.2
BENCHSTAT_VERSION      := v0.0.0-20260908200009-22c9c6c9d4da
KO_VERSION             := v0.19.1
# The keyless e2e: a Fulcio CA, an RFC 3161 TSA, a Rekor v2 log and cosign
# v3 (which writes Rekor v2 entries) beside cosign v2.
FULCIO_VERSION         := v1.8.8
TSA_VERSION            := v2.1.3
REKOR_TILES_VERSION    := v2.3.0
COSIGN3_VERSION        := v3.1.3

# Fuzzing budgets are counts of inputs, not durations: with a duration, Go
# 1.26's fuzz coordinator can report a bare "context deadline exceeded" failure
# when the deadline fires while a worker is busy (golang/go#75804, fixed in Go
# 1.27), which a loaded CI machine hits. A count has no deadline to race.
# Minimizing a new input is bounded too, so one slow target cannot stall a run.
FUZZTIME ?= 5000x
FUZZMINIMIZETIME ?= 200x

.PHONY: all build test lint fmt vet staticcheck bench fuzz crds verify-crds \
        e2e-tools sigstore-tools e2e demo registry load load-oversized cloud-size image chart-check dogfood clean \
        test-stress stress-ng conformance

all: build

build:
	$(GO) build -o $(BIN)/signgate ./cmd/signgate

## conformance: the public sigstore-conformance bundle-verify cases through
## `bin/signgate verify-bundle` (verifier/testdata/conformance; offline).
conformance: build
	bash verifier/testdata/conformance/run.sh $(BIN)/signgate verify-bundle

## test: unit + integration tests (race detector) and the chart checks.
test: chart-check verify-crds dogfood
	$(GO) test -race -count=1 ./...

## test-stress: the tests twice (race detector) while stress-ng keeps every
## core busy: no outcome may depend on timing (installs stress-ng when missing).
test-stress: stress-ng
	stress-ng --cpu 0 --timeout 2h --quiet & load=$$!; \
	trap 'kill $$load 2>/dev/null; wait $$load 2>/dev/null' EXIT; \
	$(GO) test -race -count=2 -timeout 30m ./...

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# e2e/load (build tag load) and the e2e suite (build tag e2e) are in no
# other build: vet and staticcheck them with their tags.
vet:
	$(GO) vet ./...
	$(GO) vet -tags load ./e2e/load/... ./e2e/cloudsize/
	$(GO) vet -tags e2e ./e2e/ ./e2e/harness/ ./e2e/cmd/...

staticcheck: $(STAMP)/staticcheck-$(STATICCHECK_VERSION)
	$(BIN)/staticcheck ./...
	$(BIN)/staticcheck -tags load ./e2e/load/... ./e2e/cloudsize/
	$(BIN)/staticcheck -tags e2e ./e2e/ ./e2e/harness/ ./e2e/cmd/...

## bench: Go benchmarks for verifier, policy and admission, summarised by benchstat into a
## table (bin/bench.txt holds the raw runs). BENCH_BASE=old.txt adds a before/after column.
BENCH_COUNT ?= 5
BENCH_BASE  ?=
bench: $(STAMP)/benchstat-$(BENCHSTAT_VERSION)
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./verifier/... ./policy/... ./admission/... ./internal/audit/... ./internal/cloudauth/... | tee $(BIN)/bench.txt
	$(BIN)/benchstat $(if $(BENCH_BASE),before=$(BENCH_BASE) after=$(BIN)/bench.txt,$(BIN)/bench.txt)

## load: signgate serve and PSA's webhook side by side under vegeta (e2e/load, build tag load);
## the Markdown report goes to bin/load-report.md. LOAD_FLAGS="-duration 20s -rounds 3" to vary.
LOAD_FLAGS ?=
load: build $(STAMP)/pod-security-webhook-$(KUBE_VERSION)
	$(GO) run -tags load ./e2e/load -o $(BIN)/load-report.md $(LOAD_FLAGS)

## load-oversized: peak RSS of bin/signgate serve reviewing 3 concurrent 16-image pods whose
## images have ~4 MB .sig manifests and ~3 MB referrers indexes (issue 31; docs/performance.md);
## every answer must be a denial. Report: bin/oversized-report.md. OVERSIZED_FLAGS to vary.
OVERSIZED_FLAGS ?=
load-oversized: build
	$(GO) run -tags load ./e2e/load -oversized -o $(BIN)/oversized-report.md $(OVERSIZED_FLAGS)

## cloud-size: the binary size and start-up (package initialisation) each cloud credential
## provider adds, from builds with and without its build tag (docs/performance.md). Report:
## bin/cloud-helpers.txt; docs/reports/cloud-helpers.txt is a copy. CLOUD_SIZE_RUNS starts per build.
CLOUD_SIZE_RUNS ?= 30
cloud-size:
	$(GO) run -tags load ./e2e/cloudsize -runs $(CLOUD_SIZE_RUNS) -o $(BIN)/cloud-helpers.txt

## fuzz: every native fuzz target for $(FUZZTIME) inputs each, on the checked-in corpus.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg; \
	  done; done

## crds: regenerate CRD manifests and deepcopy code from policy/v1alpha1.
## The CRDs are chart templates (charts/signgate/templates/crds), so `helm
## upgrade` upgrades them: crd-template wraps each in `if .Values.crds.install`
## and annotates it `helm.sh/resource-policy: keep` (kept on uninstall).
CRD_DIR := charts/signgate/templates/crds
crd-template = for f in $(1)/*.yaml; do \
	  awk 'NR == 1 { print "{{- if .Values.crds.install }}" } \
	       { print } \
	       /^  annotations:$$/ && !done { print "    helm.sh/resource-policy: keep"; done = 1 } \
	       END { print "{{- end }}" }' "$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f" || exit 1; \
	done
crds: $(STAMP)/controller-gen-$(CONTROLLER_GEN_VERSION)
	$(BIN)/controller-gen object paths=./policy/v1alpha1/...
	rm -f $(CRD_DIR)/*.yaml
	$(BIN)/controller-gen crd paths=./policy/v1alpha1/... output:crd:artifacts:config=$(CRD_DIR)
	@$(call crd-template,$(CRD_DIR))

## verify-crds: fail when the deepcopy code or the CRDs are stale (regenerates into a temp dir and diffs).
verify-crds: $(STAMP)/controller-gen-$(CONTROLLER_GEN_VERSION)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  $(BIN)/controller-gen object paths=./policy/v1alpha1/... output:object:dir=$$tmp \
	    crd paths=./policy/v1alpha1/... output:crd:dir=$$tmp/crds && \
	  { $(call crd-template,$$tmp/crds) } && \
	  diff -u policy/v1alpha1/zz_generated.deepcopy.go $$tmp/zz_generated.deepcopy.go && \
	  diff -ru $(CRD_DIR) $$tmp/crds && echo "crds up to date" || \
	  { echo "generated files are stale: run make crds"; exit 1; }

## chart-check: helm lint + helm template of charts/signgate.
## dogfood: `signgate check` on the chart's own rendered Deployment (Pod
## Security restricted + hardening; offline, signatures out of scope).
dogfood: build $(STAMP)/helm-$(HELM_VERSION)
	$(BIN)/helm template signgate charts/signgate -n signgate-system --show-only templates/deployment.yaml \
	  | $(BIN)/signgate check --offline -f - --namespace signgate-system --config cmd/signgate/testdata/dogfood/config.yaml

chart-check: $(STAMP)/helm-$(HELM_VERSION)
	@if [ -f charts/signgate/Chart.yaml ]; then \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set certManager.enabled=true && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set sigstore.publicGoodTrustRoot.enabled=true && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set registryCredentials.podPullSecrets=true && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set audit.enabled=true && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set registryCAs.existingConfigMap=registry-ca \
	    --set 'config.registry.certificateAuthorities.registry\.corp\.example=/etc/signgate/registry-ca/corp.pem' && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set certManager.enabled=true --set certManager.namespace=certs \
	    --set webhook.excludeNamespaces={team-infra} --set webhook.annotations.team=platform && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set webhook.failurePolicy.mutate=Ignore --set webhook.failurePolicy.validate=Ignore && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set hostNetwork=true --set image.registry=mirror.example/proxy \
	    --set service.annotations.team=platform --set metrics.serviceMonitor.enabled=true --set metrics.serviceMonitor.scrapeTimeout=10s && \
	  $(BIN)/helm lint --strict charts/signgate -n signgate-system --set-json 'extraVolumes=[{"name":"ca","configMap":{"name":"ca"}}]' \
	    --set-json 'extraVolumeMounts=[{"name":"ca","mountPath":"/etc/ssl/corp","readOnly":true}]' && \
	  $(BIN)/helm template signgate charts/signgate -n signgate-system >/dev/null && \
	  $(BIN)/helm template signgate charts/signgate -n signgate-system --set webhook.url=https://127.0.0.1:8443 >/dev/null && \
	  echo "chart ok"; \
	fi

## image: build the gate's image with ko and push it to $(KO_DOCKER_REPO) (e.g. 127.0.0.1:5055/signgate).
## No base image is pulled: e2e/cmd/base-image pushes one (CA certificates + nonroot 65532) to
## $(KO_BASE_IMAGE) first and ko builds on it. Static binary (CGO_ENABLED=0), image name = $(KO_DOCKER_REPO).
## Loopback/localhost registries are pushed to over plain HTTP. The pushed digest ref is written to
## $(IMAGE_REF_FILE) (default bin/image.ref; the e2e suite points it into its temp dir).
KO_DOCKER_REPO ?=
KO_BASE_IMAGE  ?= $(KO_DOCKER_REPO)-base:nonroot
IMAGE_REF_FILE ?= $(BIN)/image.ref
KO_INSECURE    := $(if $(filter 127.0.0.1:% localhost:% [::1]:%,$(firstword $(subst /, ,$(KO_DOCKER_REPO)))),1)
IMAGE_VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
image: $(STAMP)/ko-$(KO_VERSION)
	@test -n "$(KO_DOCKER_REPO)" || { echo "usage: make image KO_DOCKER_REPO=registry/repo"; exit 2; }
	base=$$($(GO) run ./e2e/cmd/base-image -ref $(KO_BASE_IMAGE) $(if $(KO_INSECURE),-insecure)) && \
	echo "base image: $$base" && \
	KO_DOCKER_REPO=$(KO_DOCKER_REPO) KO_DEFAULTBASEIMAGE=$$base CGO_ENABLED=0 \
	  GOFLAGS="$(GOFLAGS) -ldflags=-X=main.version=$(IMAGE_VERSION)" \
	  $(BIN)/ko build --bare --sbom=none --platform=linux/$$($(GO) env GOARCH) \
	    $(if $(KO_INSECURE),--insecure-registry) --image-refs $(IMAGE_REF_FILE) ./cmd/signgate
	@echo "image: $$(cat $(IMAGE_REF_FILE))"

## e2e-tools: kube-apiserver, etcd, cosign (v2 and v3), crane, helm, ko (the suite builds the gate's
## image with `make image`), PSA's webhook, and for keyless signing Fulcio, a TSA and a Rekor v2 log,
## in bin/, plus the registry.
e2e-tools: $(STAMP)/kube-apiserver-$(KUBE_VERSION) $(STAMP)/pod-security-webhook-$(KUBE_VERSION) \
           $(STAMP)/etcd-$(ETCD_VERSION) $(STAMP)/cosign-$(COSIGN_VERSION) \
           $(STAMP)/crane-$(GGCR_VERSION) $(STAMP)/helm-$(HELM_VERSION) $(STAMP)/ko-$(KO_VERSION) \
           sigstore-tools registry

## sigstore-tools: what the keyless e2e signs against, each on 127.0.0.1 only.
sigstore-tools: $(STAMP)/fulcio-$(FULCIO_VERSION) $(STAMP)/timestamp-server-$(TSA_VERSION) \
                $(STAMP)/rekor-server-$(REKOR_TILES_VERSION) $(STAMP)/cosign3-$(COSIGN3_VERSION)

# A stamp whose binary is gone (bin/ partly removed by hand) is stale:
# forget it so the tool is built again.
E2E_TOOLS := kube-apiserver pod-security-webhook etcd cosign crane helm ko \
             fulcio timestamp-server rekor-server cosign3
$(foreach t,$(E2E_TOOLS),$(if $(wildcard $(BIN)/$(t)),,$(shell rm -f $(STAMP)/$(t)-*)))

## e2e: the end-to-end suite against real kube-apiserver, etcd, registry and cosign (e2e/).
e2e: build e2e-tools
	$(GO) test -tags e2e -count=1 -timeout 30m -v ./e2e/ ./e2e/harness/

## demo: bring the e2e environment up and show the main job; Ctrl-C ends it (DEMO_EXIT=1: runs through and exits).
demo: build e2e-tools
	$(GO) build -tags e2e -o $(BIN)/signgate-demo ./e2e/cmd/demo
	$(BIN)/signgate-demo

## stress-ng: Debian's stress-ng, installed with apt-get when missing.
stress-ng:
	@command -v stress-ng >/dev/null || { \
	  echo "installing stress-ng with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng; }

## registry: Debian's docker-registry (CNCF distribution), installed with apt-get when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
registry:
	@command -v docker-registry >/dev/null || { \
	  echo "installing docker-registry with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry; }

# Tool stamps also depend on the go.mod/go.sum pinning them, so a changed
# pin rebuilds the tool even when the version variable stays the same.
$(STAMP)/kube-apiserver-$(KUBE_VERSION): e2e/tools/go.mod e2e/tools/go.sum
	cd e2e/tools && $(GO) build -trimpath \
	  -ldflags "-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37" \
	  -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/pod-security-webhook-$(KUBE_VERSION): e2e/tools/go.mod e2e/tools/go.sum
	cd e2e/tools && $(GO) build -trimpath -o $(BIN)/pod-security-webhook k8s.io/pod-security-admission/cmd/webhook
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/etcd-$(ETCD_VERSION): e2e/tools/etcd/go.mod e2e/tools/etcd/go.sum
	cd e2e/tools/etcd && $(GO) build -trimpath -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/cosign-$(COSIGN_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)
	@mkdir -p $(STAMP) && touch $@

# Fulcio's main package is its module root; it needs cgo (PKCS#11).
$(STAMP)/fulcio-$(FULCIO_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/sigstore/fulcio@$(FULCIO_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/timestamp-server-$(TSA_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/sigstore/timestamp-authority/v2/cmd/timestamp-server@$(TSA_VERSION)
	@mkdir -p $(STAMP) && touch $@

# rekor-tiles' POSIX-storage server, installed as bin/rekor-server.
$(STAMP)/rekor-server-$(REKOR_TILES_VERSION):
	rm -rf $(BIN)/.rekor-tiles && GOBIN=$(BIN)/.rekor-tiles $(GO) install github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix@$(REKOR_TILES_VERSION)
	mv $(BIN)/.rekor-tiles/posix $(BIN)/rekor-server && rmdir $(BIN)/.rekor-tiles
	@mkdir -p $(STAMP) && touch $@

# cosign v3 beside v2, installed as bin/cosign3.
$(STAMP)/cosign3-$(COSIGN3_VERSION):
	rm -rf $(BIN)/.cosign3 && GOBIN=$(BIN)/.cosign3 $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@$(COSIGN3_VERSION)
	mv $(BIN)/.cosign3/cosign $(BIN)/cosign3 && rmdir $(BIN)/.cosign3
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/crane-$(GGCR_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(GGCR_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/helm-$(HELM_VERSION):
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/controller-gen-$(CONTROLLER_GEN_VERSION):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/staticcheck-$(STATICCHECK_VERSION):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/benchstat-$(BENCHSTAT_VERSION):
	GOBIN=$(BIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/ko-$(KO_VERSION):
	GOBIN=$(BIN) $(GO) install github.com/google/ko@$(KO_VERSION)
	@mkdir -p $(STAMP) && touch $@

clean:
	rm -rf $(BIN)
