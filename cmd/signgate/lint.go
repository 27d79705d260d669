package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/signgate/signgate/policy"
)

// lintOptions are the flags of `signgate lint`.
type lintOptions struct {
	Files  []string // -f: files, directories or "-"
	Output string   // "text" (default) or "json"
}

// newLintCmd is `signgate lint`.
func newLintCmd() *cobra.Command {
	var opts lintOptions
	cmd := &cobra.Command{
		Use:   "lint -f FILE|DIR|- [flags]",
		Short: "Check ClusterImagePolicy, ImagePolicy and TrustRoot files (for CI)",
		Long: `Checks the ClusterImagePolicy, ImagePolicy and TrustRoot objects of YAML and
JSON files, each on its own, with the compiler the gate uses: unknown fields,
wrong types, keys, globs, selectors, regular expressions, CEL conditions,
thresholds, trusted roots. What an object only names is not read: the Secret
of a secretRef, the TrustRoot of a keyless authority. Other kinds are
skipped. Prints one line per problem, FILE:LINE: OBJECT: MESSAGE (-o json:
an array), and a summary on stderr.

Exit codes: 0 no problems; 1 problems found; 2 usage or input error (no -f,
an unreadable file, a directory without *.yaml, *.yml or *.json files).`,
		Example: `  signgate lint -f policies/
  signgate lint -f cluster-policies.yaml -f team-a/ -o json
  helm template charts/policies | signgate lint -f -`,
		Args: noArgs("policy files are given with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			return exitCode(runLint(opts, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *lintOptions) addFlags(fs *pflag.FlagSet) {
	listFlag(fs, &o.Files, paths, "filename", "f", "policy `FILE`, directory (recursive: *.yaml, *.yml, *.json) or - for stdin; repeatable")
	fs.StringVarP(&o.Output, "output", "o", "text", "output `FORMAT`: text or json")
}

func (o *lintOptions) validate() error {
	if len(o.Files) == 0 {
		return errors.New("-f is required (a file, a directory or - for stdin)")
	}
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("-o %q: want text or json", o.Output)
	}
	return nil
}

// lintInput is one file to lint: its name in messages and its content.
type lintInput struct {
	name string
	data []byte
}

// lintProblem is one problem in the JSON output.
type lintProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Object  string `json:"object"` // "ClusterImagePolicy corp"; "" for the file or document
	Message string `json:"message"`
}

// runLint reads every file, then lints each and writes the problems to
// stdout and a summary to stderr. A file that cannot be read is an input
// error: exit 2 before anything is linted.
func runLint(opts lintOptions, stdin io.Reader, stdout, stderr io.Writer) int {
	in, err := readLintInputs(opts.Files, stdin, "lint")
	if err != nil {
		fmt.Fprintf(stderr, "signgate lint: %v\n", err)
		return exitUsage
	}
	var problems []policy.LintProblem
	files := 0
	for _, f := range in {
		ps := policy.LintFile(f.name, f.data)
		if len(ps) > 0 {
			files++
		}
		problems = append(problems, ps...)
	}
	if opts.Output == "json" {
		out := []lintProblem{}
		for _, p := range problems {
			out = append(out, lintProblem{File: p.File, Line: p.Line, Object: p.What, Message: p.Msg})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		err = enc.Encode(out)
	} else {
		for _, p := range problems {
			// Compiler messages can span lines: one problem, one line.
			if _, err = fmt.Fprintln(stdout, strings.Join(strings.Fields(p.String()), " ")); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "signgate lint: write report: %v\n", err)
		return exitUsage
	}
	if len(problems) == 0 {
		fmt.Fprintf(stderr, "%s checked: no problems\n", plural(len(in), "file"))
		return exitOK
	}
	fmt.Fprintf(stderr, "%s checked: %s in %s\n", plural(len(in), "file"), plural(len(problems), "problem"), plural(files, "file"))
	return exitDenied
}

// readLintInputs reads the given paths: files, directories (walked as check
// walks them) or "-" for stdin. A directory without a single *.yaml, *.yml
// or *.json file is an error: a CI job whose path points at nothing must
// not pass.
func readLintInputs(paths []string, stdin io.Reader, verb string) ([]lintInput, error) {
	var out []lintInput
	read := func(path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return &inputError{At: source{File: path}, Err: pathCause(err)}
		}
		out = append(out, lintInput{name: path, data: data})
		return nil
	}
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, &inputError{At: source{File: stdinName}, Err: fmt.Errorf("read: %w", err)}
			}
			out = append(out, lintInput{name: stdinName, data: data})
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, &inputError{At: source{File: p}, Err: pathCause(err)}
		}
		if !info.IsDir() {
			if err := read(p); err != nil {
				return nil, err
			}
			continue
		}
		n := len(out)
		if err := walkManifestFiles(p, read); err != nil {
			return nil, err
		}
		if len(out) == n {
			return nil, &inputError{At: source{File: p}, Err: errors.New("no *.yaml, *.yml or *.json files in this directory: nothing to " + verb)}
		}
	}
	return out, nil
}

// plural is "1 file", "2 files".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
