// Command liquidlab runs experiments on long-sequence liquid text models.
//
// Usage:
//
//	liquidlab <command> [flags] [args]
//
// Commands are listed by `liquidlab help`; each takes -h for its own flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// env is what a command sees of the process, so commands are testable.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	summary string
	hidden  bool
	run     func(e *env, args []string) error
}

// commands is filled by each cmd_*.go file's init.
var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("duplicate command " + name)
	}
	commands[name] = c
}

// errUsage marks an error whose message is a usage problem (exit status 2).
var errUsage = errors.New("usage")

func main() {
	// The model's parameters and reusable buffers are a large live heap of
	// pointer-free float slices; with Go's default 100% garbage allowance the
	// resident set grows by that much again between collections. 25% keeps
	// memory close to what a chunk needs (and marking float slices is cheap).
	// GOGC set by the user wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := run(e, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "liquidlab:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(e *env, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(e, []string{"-h"})
			}
		}
		usage(e.stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (see 'liquidlab help'): %w", args[0], errUsage)
	}
	return c.run(e, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "liquidlab runs experiments on long-sequence liquid text models.")
	fmt.Fprintln(w, "\nUsage: liquidlab <command> [flags] [args]    (liquidlab <command> -h for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

// newFlags returns a FlagSet that prints its usage to e.stderr with a synopsis.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: liquidlab %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and converts flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %v: %w", fs.Name(), strings.TrimSpace(err.Error()), errUsage)
	}
	return nil
}
