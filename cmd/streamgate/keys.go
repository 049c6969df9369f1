package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/streamgate/streamgate/gateway/auth"
)

// keysCmd manages access keys in a data directory's keys file. A running
// gateway picks changes up within a second (new keys at once).
func keysCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: streamgate keys create NAME [--policy FILE] | list | delete ID  [--data-dir DIR]")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ExitOnError)
	dataDir := fs.String("data-dir", "./data", "the gateway's data directory")
	policyFile := fs.String("policy", "", "IAM-style JSON policy file (default: allow everything)")
	rate := fs.Float64("rate", 0, "requests per second the key may make (0: no limit)")
	name, rest := splitFirst(args[1:])
	fs.Parse(rest)
	if name == "" {
		name = fs.Arg(0)
	}
	path := auth.KeysPath(*dataDir)
	keys, err := auth.LoadKeys(path)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && args[0] == "create") {
		return err
	}
	switch args[0] {
	case "create":
		if name == "" {
			return errors.New("keys create: name the key")
		}
		policy := auth.AdminPolicy()
		if *policyFile != "" {
			doc, err := os.ReadFile(*policyFile)
			if err != nil {
				return err
			}
			if policy, err = auth.ParsePolicy(doc); err != nil {
				return err
			}
		}
		k := auth.NewKey(name, policy)
		k.RequestsPerSecond = *rate
		if err := auth.SaveKeys(path, append(keys, k)); err != nil {
			return err
		}
		fmt.Printf("AccessKeyId:     %s\nSecretAccessKey: %s\n", k.ID, k.Secret)
	case "list":
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ACCESS KEY ID\tNAME\tCREATED\tSTATEMENTS\tREQUESTS/S")
		for _, k := range keys {
			rate := "-"
			if k.RequestsPerSecond > 0 {
				rate = fmt.Sprint(k.RequestsPerSecond)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", k.ID, k.Name, k.Created.Format("2006-01-02 15:04:05Z"), len(k.Policy.Statement), rate)
		}
		return w.Flush()
	case "delete":
		if name == "" {
			return errors.New("keys delete: give the access key id")
		}
		kept := keys[:0]
		for _, k := range keys {
			if k.ID != name {
				kept = append(kept, k)
			}
		}
		if len(kept) == len(keys) {
			return fmt.Errorf("keys delete: no key %s", name)
		}
		if err := auth.SaveKeys(path, kept); err != nil {
			return err
		}
		fmt.Println("deleted", name)
	default:
		return fmt.Errorf("keys: unknown subcommand %q (create, list, delete)", args[0])
	}
	return nil
}
