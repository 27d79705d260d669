package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/signgate/signgate/policy/v1alpha1"
)

// objects is what a policy directory holds once decoded.
type objects struct {
	policies   []*policyObject
	namespaces map[string]map[string]string            // name → labels
	secrets    map[string]map[string]map[string][]byte // namespace → name → data
	configMaps map[string]map[string]map[string][]byte // namespace → name → data (and binaryData)
	trustRoots map[string]*trustRootObject             // name → TrustRoot
	ids        map[string]bool                         // policy IDs seen
}

func newObjects() *objects {
	return &objects{
		namespaces: map[string]map[string]string{},
		secrets:    map[string]map[string]map[string][]byte{},
		configMaps: map[string]map[string]map[string][]byte{},
		trustRoots: map[string]*trustRootObject{},
		ids:        map[string]bool{},
	}
}

// maxDocumentBytes bounds one YAML document; policies are small, and the
// loader also reads untrusted files in CI.
const maxDocumentBytes = 4 << 20

// decodeObjects reads multi-document YAML (or JSON) of ClusterImagePolicy,
// ImagePolicy, TrustRoot, Namespace, Secret and ConfigMap objects, and v1
// Lists of them, into
// into. Namespaced objects without a namespace go to "default", as with
// kubectl. A document that cannot be identified (bad YAML, unknown kind,
// no name) is an error. A policy that is identified but does not decode
// strictly (unknown field, wrong type) is kept, with DecodeErr, so that it
// denies instead of disappearing; so is a TrustRoot, so that the policies
// naming it are invalid with the reason.
func decodeObjects(into *objects, file string, data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 4096))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: document %d: %w", file, n, err)
		}
		if len(doc) > maxDocumentBytes {
			return fmt.Errorf("read %s: document %d: larger than %d bytes", file, n, maxDocumentBytes)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("decode %s: document %d: %w", file, n, err)
		}
		if err := into.add(js); err != nil {
			return fmt.Errorf("decode %s: document %d: %w", file, n, err)
		}
	}
}

// header is the part of any object needed to identify it.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (o *objects) add(js []byte) error {
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		return nil // empty document
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	switch gk := h.APIVersion + " " + h.Kind; gk {
	case "v1 List":
		for i, item := range h.Items {
			if err := o.add(item); err != nil {
				return fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return nil
	case "v1 Namespace":
		return o.addNamespace(js, h)
	case "v1 Secret":
		return o.addSecret(js, h)
	case "v1 ConfigMap":
		return o.addConfigMap(js, h)
	case v1alpha1.GroupVersion.String() + " " + KindTrustRoot:
		return o.addTrustRoot(js, h)
	case v1alpha1.GroupVersion.String() + " " + KindClusterImagePolicy:
		return o.addClusterPolicy(js, h)
	case v1alpha1.GroupVersion.String() + " " + KindImagePolicy:
		return o.addPolicy(js, h)
	default:
		return fmt.Errorf("%s is not a ClusterImagePolicy, ImagePolicy, TrustRoot (%s), Namespace, Secret or ConfigMap (v1)", gk, v1alpha1.GroupVersion)
	}
}

func (o *objects) addNamespace(js []byte, h header) error {
	var ns corev1.Namespace
	if err := strict(js, &ns); err != nil {
		return fmt.Errorf("Namespace %q: %w", h.Metadata.Name, err)
	}
	if ns.Name == "" {
		return errors.New("Namespace without metadata.name")
	}
	if _, dup := o.namespaces[ns.Name]; dup {
		return fmt.Errorf("Namespace %q defined twice", ns.Name)
	}
	l := maps.Clone(ns.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[corev1.LabelMetadataName] = ns.Name // set by the API server, too
	o.namespaces[ns.Name] = l
	return nil
}

func (o *objects) addSecret(js []byte, h header) error {
	var s corev1.Secret
	if err := strict(js, &s); err != nil {
		return fmt.Errorf("Secret %q: %w", h.Metadata.Name, err)
	}
	if s.Name == "" {
		return errors.New("Secret without metadata.name")
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	data := maps.Clone(s.Data)
	if data == nil {
		data = map[string][]byte{}
	}
	for k, v := range s.StringData { // the API server merges stringData the same way
		data[k] = []byte(v)
	}
	byName := o.secrets[s.Namespace]
	if byName == nil {
		byName = map[string]map[string][]byte{}
		o.secrets[s.Namespace] = byName
	}
	if _, dup := byName[s.Name]; dup {
		return fmt.Errorf("Secret %s/%s defined twice", s.Namespace, s.Name)
	}
	byName[s.Name] = data
	return nil
}

func (o *objects) addConfigMap(js []byte, h header) error {
	var cm corev1.ConfigMap
	if err := strict(js, &cm); err != nil {
		return fmt.Errorf("ConfigMap %q: %w", h.Metadata.Name, err)
	}
	if cm.Name == "" {
		return errors.New("ConfigMap without metadata.name")
	}
	if cm.Namespace == "" {
		cm.Namespace = "default"
	}
	byName := o.configMaps[cm.Namespace]
	if byName == nil {
		byName = map[string]map[string][]byte{}
		o.configMaps[cm.Namespace] = byName
	}
	if _, dup := byName[cm.Name]; dup {
		return fmt.Errorf("ConfigMap %s/%s defined twice", cm.Namespace, cm.Name)
	}
	byName[cm.Name] = configMapData(&cm)
	return nil
}

// configMapData merges a ConfigMap's data and binaryData (the API server
// rejects a key in both).
func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	data := maps.Clone(cm.BinaryData)
	if data == nil {
		data = map[string][]byte{}
	}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	return data
}

func (o *objects) addTrustRoot(js []byte, h header) error {
	if h.Metadata.Name == "" {
		return errors.New("TrustRoot without metadata.name")
	}
	if _, dup := o.trustRoots[h.Metadata.Name]; dup {
		return fmt.Errorf("TrustRoot %q defined twice", h.Metadata.Name)
	}
	t := &trustRootObject{Name: h.Metadata.Name}
	var tr v1alpha1.TrustRoot
	if err := strict(js, &tr); err != nil {
		t.DecodeErr = fmt.Errorf("decode: %w", err)
	} else {
		t.Spec = tr.Spec
	}
	o.trustRoots[t.Name] = t
	return nil
}

func (o *objects) addClusterPolicy(js []byte, h header) error {
	p := &policyObject{Kind: KindClusterImagePolicy, Name: h.Metadata.Name}
	var cip v1alpha1.ClusterImagePolicy
	if err := strict(js, &cip); err != nil {
		p.DecodeErr = fmt.Errorf("decode: %w", err)
	} else {
		p.Generation, p.Spec, p.Selector = cip.Generation, cip.Spec.ImagePolicySpec, cip.Spec.NamespaceSelector
	}
	return o.addPolicyObject(p)
}

func (o *objects) addPolicy(js []byte, h header) error {
	p := &policyObject{Kind: KindImagePolicy, Name: h.Metadata.Name, Namespace: h.Metadata.Namespace}
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	var ip v1alpha1.ImagePolicy
	if err := strict(js, &ip); err != nil {
		p.DecodeErr = fmt.Errorf("decode: %w", err)
	} else {
		p.Generation, p.Spec = ip.Generation, ip.Spec
	}
	return o.addPolicyObject(p)
}

func (o *objects) addPolicyObject(p *policyObject) error {
	if p.Name == "" {
		return fmt.Errorf("%s without metadata.name", p.Kind)
	}
	if o.ids[p.ID()] {
		return fmt.Errorf("%s defined twice", p.ID())
	}
	o.ids[p.ID()] = true
	o.policies = append(o.policies, p)
	return nil
}

// strict decodes JSON, rejecting unknown and duplicate fields: a misspelt
// "treshold" must not silently weaken a policy.
func strict(js []byte, v any) error {
	return yaml.UnmarshalStrict(js, v)
}
