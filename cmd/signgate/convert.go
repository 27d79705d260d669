package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signgate/signgate/internal/convert"
)

// convertOptions are the flags of `signgate convert`.
type convertOptions struct {
	Files      []string // -f: files, directories or "-"
	Output     string   // "yaml" (default) or "json"
	PublicGood string   // --public-good-trust-root
}

// newConvertCmd is `signgate convert`.
func newConvertCmd() *cobra.Command {
	var opts convertOptions
	cmd := &cobra.Command{
		Use:   "convert -f FILE|DIR|- [flags]",
		Short: "Convert policy-controller and Kyverno image policies into signgate policies",
		Long: `Converts sigstore policy-controller ClusterImagePolicies and TrustRoots
(policy.sigstore.dev v1alpha1, v1beta1) and Kyverno ClusterPolicies and
Policies with verifyImages rules (kyverno.io) into signgate
ClusterImagePolicies, ImagePolicies and TrustRoots, written as YAML to
stdout, each after a comment naming its source. Every input field that
cannot be converted is listed on stderr, FILE:LINE: KIND NAME: FIELD:
REASON, saying what the output does instead. A conversion is never more
permissive than its source: what cannot be expressed is left out in the
direction that denies, or the policy is not written (docs/migrating.md).
Documents of other kinds are skipped and counted.

Exit codes: 0 everything converted; 1 some fields or policies not
converted (the list on stderr); 2 usage or input error (no -f, an
unreadable file or YAML, a directory without *.yaml, *.yml or *.json
files).`,
		Example: `  signgate convert -f policy-controller/ > signgate-policies.yaml
  kubectl get clusterpolicies.kyverno.io -o yaml | signgate convert -f -
  signgate convert -f cip.yaml -o json | jq '.problems'`,
		Args: noArgs("policy files are given with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			return exitCode(runConvert(opts, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *convertOptions) addFlags(fs *pflag.FlagSet) {
	listFlag(fs, &o.Files, paths, "filename", "f", "policy `FILE`, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fs.StringVarP(&o.Output, "output", "o", "yaml", "output `FORMAT`: yaml (the policies; problems on stderr) or json (policies and problems)")
	fs.StringVar(&o.PublicGood, "public-good-trust-root", convert.DefaultPublicGoodTrustRoot, "`NAME` of the TrustRoot of Sigstore's public-good instance, which keyless authorities trust unless they name another (the chart's sigstore.publicGoodTrustRoot.name)")
}

func (o *convertOptions) validate() error {
	if len(o.Files) == 0 {
		return errors.New("-f is required (a file, a directory or - for stdin)")
	}
	if o.Output != "yaml" && o.Output != "json" {
		return fmt.Errorf("-o %q: want yaml or json", o.Output)
	}
	if o.PublicGood == "" {
		return errors.New("--public-good-trust-root must not be empty")
	}
	return nil
}

// convertReport is the JSON output.
type convertReport struct {
	Objects  []any             `json:"objects"`
	Problems []convert.Problem `json:"problems"`
	Skipped  []convert.Source  `json:"skipped"`
}

// runConvert reads every file (an unreadable one is exit 2 before
// anything is written), converts each, writes the policies and lists the
// problems.
func runConvert(opts convertOptions, stdin io.Reader, stdout, stderr io.Writer) int {
	in, err := readLintInputs(opts.Files, stdin, "convert")
	if err != nil {
		fmt.Fprintf(stderr, "signgate convert: %v\n", err)
		return exitUsage
	}
	var all convert.Result
	for _, f := range in {
		r, err := convert.Convert(f.name, f.data, convert.Options{PublicGoodTrustRoot: opts.PublicGood})
		if err != nil {
			fmt.Fprintf(stderr, "signgate convert: %v\n", err)
			return exitUsage
		}
		all.Objects = append(all.Objects, r.Objects...)
		all.Problems = append(all.Problems, r.Problems...)
		all.Skipped = append(all.Skipped, r.Skipped...)
	}
	convert.SortProblems(all.Problems)
	if opts.Output == "json" {
		rep := convertReport{Objects: []any{}, Problems: all.Problems, Skipped: all.Skipped}
		for _, o := range all.Objects {
			rep.Objects = append(rep.Objects, o.Obj)
		}
		if rep.Problems == nil {
			rep.Problems = []convert.Problem{}
		}
		if rep.Skipped == nil {
			rep.Skipped = []convert.Source{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		err = enc.Encode(rep)
	} else {
		err = convert.WriteYAML(stdout, all.Objects)
		for _, p := range all.Problems {
			fmt.Fprintln(stderr, p)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "signgate convert: write: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s read: %s written; %s not converted; %s of other kinds skipped\n",
		plural(policyInputs(all), "input object"), plural(len(all.Objects), "object"), plural(len(all.Problems), "field"), plural(len(all.Skipped), "document"))
	if len(all.Problems) > 0 {
		return exitDenied
	}
	return exitOK
}

// policyInputs counts the distinct input objects that were converted or
// had problems.
func policyInputs(r convert.Result) int {
	seen := map[convert.Source]bool{}
	for _, o := range r.Objects {
		seen[o.From] = true
	}
	for _, p := range r.Problems {
		seen[p.Source] = true
	}
	return len(seen)
}
