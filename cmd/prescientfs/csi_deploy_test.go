package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

const deployDir = "../../deploy"

// renderChart renders the Helm chart as `helm template` would for the
// subset of Helm it uses (.Values, .Release, .Chart, toJson, quote): helm
// itself is not installed where the tests run. missingkey=error catches a
// template naming a value that values.yaml lacks.
func renderChart(t *testing.T, set map[string]any) (map[string]any, map[string][]byte) {
	t.Helper()
	chartDir := filepath.Join(deployDir, "helm", "prescientfs-csi")
	var values, chart map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	for k, v := range set { // as helm --set (top-level keys)
		values[k] = v
	}
	data := map[string]any{
		"Values":  values,
		"Release": map[string]any{"Name": "prescientfs-csi", "Namespace": "kube-system"},
		"Chart":   map[string]any{"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
	}
	funcs := template.FuncMap{
		"toJson": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		"quote":  func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	}
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		tpl, err := template.New(filepath.Base(f)).Funcs(funcs).Option("missingkey=error").ParseFiles(f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, data); err != nil {
			t.Fatalf("render %s: %v", f, err)
		}
		out[filepath.Base(f)] = b.Bytes()
	}
	return values, out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes every document of a manifest into its k8s.io/api
// type, refusing unknown fields.
func decodeStrict(t *testing.T, name string, manifest []byte) []any {
	t.Helper()
	var objs []any
	for _, doc := range docSep.Split(string(manifest), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "storage.k8s.io/v1 CSIDriver":
			obj = &storagev1.CSIDriver{}
		case "apps/v1 DaemonSet":
			obj = &appsv1.DaemonSet{}
		case "batch/v1 Job":
			obj = &batchv1.Job{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1 Secret":
			obj = &corev1.Secret{}
		case "v1 PersistentVolume":
			obj = &corev1.PersistentVolume{}
		case "v1 PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "v1 Pod":
			obj = &corev1.Pod{}
		default:
			t.Fatalf("%s: unexpected %s %s", name, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s (%s): %v", name, meta.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestCSIChartRendersStrictly(t *testing.T) {
	_, defaults := renderChart(t, nil)
	for name, m := range defaults {
		decodeStrict(t, name, m)
	}
	values, rendered := renderChart(t, map[string]any{"extraEnv": []any{map[string]any{"name": "AWS_ENDPOINT_URL_S3", "value": "https://s3.example:9000"}}})
	driverName := values["driverName"].(string)
	kubeletDir := values["kubeletDir"].(string)
	var driver *storagev1.CSIDriver
	var ds *appsv1.DaemonSet
	var sa *corev1.ServiceAccount
	for name, m := range rendered {
		for _, o := range decodeStrict(t, name, m) {
			switch o := o.(type) {
			case *storagev1.CSIDriver:
				driver = o
			case *appsv1.DaemonSet:
				ds = o
			case *corev1.ServiceAccount:
				sa = o
			}
		}
	}
	if driver == nil || ds == nil || sa == nil {
		t.Fatalf("chart lacks a CSIDriver, DaemonSet or ServiceAccount")
	}
	s := driver.Spec
	if driver.Name != driverName || s.AttachRequired == nil || *s.AttachRequired || s.PodInfoOnMount == nil || !*s.PodInfoOnMount ||
		s.RequiresRepublish == nil || !*s.RequiresRepublish ||
		!slices.Contains(s.VolumeLifecycleModes, storagev1.VolumeLifecyclePersistent) || !slices.Contains(s.VolumeLifecycleModes, storagev1.VolumeLifecycleEphemeral) {
		t.Fatalf("CSIDriver: %+v", driver)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Errorf("DaemonSet update strategy %q, want OnDelete", ds.Spec.UpdateStrategy.Type)
	}
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("DaemonSet runs as %q, the chart's ServiceAccount is %q", pod.ServiceAccountName, sa.Name)
	}
	names := map[string]corev1.Container{}
	for _, c := range pod.Containers {
		names[c.Name] = c
	}
	for _, want := range []string{"prescientfs", "node-driver-registrar", "liveness-probe"} {
		if _, ok := names[want]; !ok {
			t.Errorf("DaemonSet lacks the %s container", want)
		}
	}
	plugin := names["prescientfs"]
	if plugin.SecurityContext == nil || plugin.SecurityContext.Privileged == nil || !*plugin.SecurityContext.Privileged {
		t.Error("the plugin container is not privileged")
	}
	bidi := false
	for _, vm := range plugin.VolumeMounts {
		if vm.MountPath == kubeletDir && vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationBidirectional {
			bidi = true
		}
	}
	if !bidi {
		t.Errorf("the plugin does not mount %s Bidirectional", kubeletDir)
	}
	// The plugin's arguments are flags of `prescientfs csi`.
	if len(plugin.Args) == 0 || plugin.Args[0] != "csi" {
		t.Fatalf("plugin args %v", plugin.Args)
	}
	var flagNames []string
	for _, f := range csiCommand().Flags {
		flagNames = append(flagNames, f.Names()...)
	}
	for _, a := range plugin.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !slices.Contains(flagNames, name) {
			t.Errorf("plugin arg %q is no flag of prescientfs csi", a)
		}
	}
	if env := plugin.Env; len(env) != 2 || env[1].Name != "AWS_ENDPOINT_URL_S3" || env[1].Value != "https://s3.example:9000" {
		t.Errorf("plugin env %+v: want KUBE_NODE_NAME and the extraEnv given", env)
	}
	reg := strings.Join(names["node-driver-registrar"].Args, " ")
	if !strings.Contains(reg, kubeletDir+"/plugins/"+driverName+"/csi.sock") {
		t.Errorf("registrar args %q do not name the plugin's socket", reg)
	}
}

// TestCSIExamplesDecodeStrictly checks the examples against the API types
// and against this binary: the driver's name, attributes and Secret keys
// a volume accepts, and HostToContainer propagation in the pods.
func TestCSIExamplesDecodeStrictly(t *testing.T) {
	values, _ := renderChart(t, nil)
	driverName := values["driverName"].(string)
	files, _ := filepath.Glob(filepath.Join(deployDir, "examples", "*.yaml"))
	if len(files) < 4 {
		t.Fatalf("examples: %v", files)
	}
	secrets := map[string]map[string]string{}
	type csiVol struct {
		where  string
		driver string
		attrs  map[string]string
		secret string
	}
	var vols []csiVol
	var podSpecs []corev1.PodSpec
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decodeStrict(t, filepath.Base(f), b) {
			switch o := o.(type) {
			case *corev1.Secret:
				secrets[o.Name] = o.StringData
			case *corev1.PersistentVolume:
				c := o.Spec.CSI
				if c == nil || c.NodePublishSecretRef == nil {
					t.Fatalf("%s: PV without csi or nodePublishSecretRef", f)
				}
				vols = append(vols, csiVol{f, c.Driver, c.VolumeAttributes, c.NodePublishSecretRef.Name})
			case *corev1.Pod:
				podSpecs = append(podSpecs, o.Spec)
				for _, v := range o.Spec.Volumes {
					if c := v.CSI; c != nil {
						secret := ""
						if c.NodePublishSecretRef != nil {
							secret = c.NodePublishSecretRef.Name
						}
						vols = append(vols, csiVol{f, c.Driver, c.VolumeAttributes, secret})
					}
				}
			case *batchv1.Job:
				podSpecs = append(podSpecs, o.Spec.Template.Spec)
			}
		}
	}
	if len(vols) < 2 || len(secrets) == 0 {
		t.Fatalf("examples have %d CSI volumes and %d Secrets", len(vols), len(secrets))
	}
	for _, v := range vols {
		if v.driver != driverName {
			t.Errorf("%s: driver %q, the chart installs %q", v.where, v.driver, driverName)
		}
		var sec map[string]string
		if v.secret != "" {
			if sec = secrets[v.secret]; sec == nil {
				t.Errorf("%s: Secret %q is not among the examples", v.where, v.secret)
			}
		}
		if _, err := volumecontext.Parse(v.attrs, sec, csiAllowedFlags()); err != nil {
			t.Errorf("%s: %v", v.where, err)
		}
	}
	for _, ps := range podSpecs {
		for _, c := range ps.Containers {
			for _, vm := range c.VolumeMounts {
				if vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationHostToContainer {
					t.Errorf("container %s mounts %s without HostToContainer propagation", c.Name, vm.MountPath)
				}
			}
		}
	}
}
