// Command flux-apply applies one Flux Kustomization's folder to a cluster the way Flux's
// kustomize-controller does, with the same libraries: fluxcd/pkg/kustomize builds the folder
// (its generator writes the Kustomization's targetNamespace, patches and images into a copy of
// the repository, then a secure kustomize build runs inside it), and fluxcd/pkg/ssa applies
// the objects in stages (CRDs, ClusterRoles and Namespaces first and waited for, then class
// definitions, then everything else) under the kustomize-controller field manager and owner
// labels. With --inventory, objects of the previous inventory that left the folder are pruned
// as the controller's garbage collection does when spec.prune is true.
//
// The result is one JSON document on stdout: {"applied": [...], "pruned": [...],
// "inventory": [...], "error": "..."}; the exit status is 1 when the apply failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/kustomize"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

type result struct {
	Applied   []string `json:"applied"`
	Pruned    []string `json:"pruned"`
	Inventory []string `json:"inventory"`
	Error     string   `json:"error,omitempty"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the target cluster")
	root := flag.String("root", "", "the repository root the Kustomization's spec.path is relative to")
	kustomizationFile := flag.String("kustomization", "", "a file holding the Flux Kustomization object")
	inventoryFile := flag.String("inventory", "", "file with the previous inventory (JSON list); rewritten after the apply")
	flag.Parse()

	res := result{Applied: []string{}, Pruned: []string{}, Inventory: []string{}}
	err := run(*kubeconfig, *root, *kustomizationFile, *inventoryFile, &res)
	if err != nil {
		res.Error = err.Error()
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	if err != nil {
		os.Exit(1)
	}
}

func run(kubeconfig, root, kustomizationFile, inventoryFile string, res *result) error {
	raw, err := os.ReadFile(kustomizationFile)
	if err != nil {
		return err
	}
	var ks unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &ks.Object); err != nil {
		return fmt.Errorf("reading the Kustomization: %w", err)
	}
	spec, _, _ := unstructured.NestedMap(ks.Object, "spec")
	path, _ := spec["path"].(string)
	force, _ := spec["force"].(bool)
	prune, _ := spec["prune"].(bool)
	timeout := 5 * time.Minute
	if t, ok := spec["timeout"].(string); ok {
		if d, err := time.ParseDuration(t); err == nil {
			timeout = d
		}
	}

	// The controller builds in a temporary copy of the source artifact; so do we, because the
	// generator rewrites kustomization.yaml in place.
	work, err := os.MkdirTemp("", "flux-apply-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := copyTree(root, work); err != nil {
		return err
	}
	dir, err := securePath(work, path)
	if err != nil {
		return err
	}
	if _, err := kustomize.NewGenerator(work, ks).WriteFile(dir); err != nil {
		return fmt.Errorf("kustomization generation failed: %w", err)
	}
	resMap, err := kustomize.SecureBuild(work, dir, false)
	if err != nil {
		return fmt.Errorf("kustomize build failed: %w", err)
	}
	manifests, err := resMap.AsYaml()
	if err != nil {
		return err
	}
	objects, err := ssautils.ReadObjects(strings.NewReader(string(manifests)))
	if err != nil {
		return err
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	kubeClient, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	poller := polling.NewStatusPoller(kubeClient, kubeClient.RESTMapper(), polling.Options{})
	manager := ssa.NewResourceManager(kubeClient, poller, ssa.Owner{
		Field: "kustomize-controller",
		Group: "kustomize.toolkit.fluxcd.io",
	})
	manager.SetOwnerLabels(objects, ks.GetName(), ks.GetNamespace())

	opts := ssa.DefaultApplyOptions()
	opts.Force = force
	opts.ExclusionSelector = map[string]string{"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
	opts.IfNotPresentSelector = map[string]string{"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
	opts.ForceSelector = map[string]string{"kustomize.toolkit.fluxcd.io/force": "enabled"}
	opts.WaitTimeout = timeout

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	changeSet, applyErr := manager.ApplyAllStaged(ctx, objects, opts)
	if changeSet != nil {
		for _, entry := range changeSet.Entries {
			res.Applied = append(res.Applied, entry.String())
		}
	}
	if applyErr != nil {
		return applyErr
	}

	current := map[string]bool{}
	for _, o := range objects {
		id := objectID(o)
		current[id] = true
		res.Inventory = append(res.Inventory, id)
	}
	if inventoryFile == "" {
		return nil
	}
	var previous []string
	if raw, err := os.ReadFile(inventoryFile); err == nil {
		if err := json.Unmarshal(raw, &previous); err != nil {
			return fmt.Errorf("reading the inventory: %w", err)
		}
	}
	if prune {
		var stale []*unstructured.Unstructured
		for _, id := range previous {
			if !current[id] {
				stale = append(stale, objectFromID(id))
			}
		}
		deleted, err := manager.DeleteAll(ctx, stale, ssa.DeleteOptions{
			PropagationPolicy: "Background",
			Inclusions:        manager.GetOwnerLabels(ks.GetName(), ks.GetNamespace()),
			Exclusions:        map[string]string{"kustomize.toolkit.fluxcd.io/prune": "disabled"},
		})
		if deleted != nil {
			for _, entry := range deleted.Entries {
				res.Pruned = append(res.Pruned, entry.String())
			}
		}
		if err != nil {
			return err
		}
	}
	out, _ := json.Marshal(res.Inventory)
	return os.WriteFile(inventoryFile, out, 0o644)
}

// objectID is the inventory entry of an object, as kustomize-controller records it:
// namespace_name_group_kind (cli-utils' ObjMetadata) plus the version to rebuild it.
func objectID(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	return strings.Join([]string{o.GetNamespace(), o.GetName(), gvk.Group, gvk.Kind, gvk.Version}, "_")
}

func objectFromID(id string) *unstructured.Unstructured {
	parts := strings.SplitN(id, "_", 5)
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: parts[2], Kind: parts[3], Version: parts[4]})
	o.SetNamespace(parts[0])
	o.SetName(parts[1])
	return o
}

// securePath joins a Kustomization's spec.path to the root and refuses one that leaves it,
// as the controller's SecureJoin does.
func securePath(root, path string) (string, error) {
	joined := filepath.Join(root, filepath.Clean("/"+path))
	if !strings.HasPrefix(joined, root) {
		return "", fmt.Errorf("path %q leaves the source root", path)
	}
	return joined, nil
}

// copyTree copies regular files and folders; symbolic links are not followed (the
// controller's secure file system refuses them too).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if d.Name() == ".git" || d.Name() == ".venv" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
		return nil
	})
}
