package volumecontext

import (
	"errors"
	"strings"
	"testing"
)

var flags = []string{"stac-url", "metadata-ttl", "memory-limit", "no-sign-request"}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		attrs   map[string]string
		secrets map[string]string
		err     string // substring of the error; "" for success
		check   func(t *testing.T, v *Volume)
	}{
		{name: "flags and settings", attrs: map[string]string{"stac-url": "http://x/stac", "memory-limit": "64MiB", "prescient_aws_region": "eu-west-1"},
			check: func(t *testing.T, v *Volume) {
				if v.Flags["memory-limit"] != "64MiB" || v.Settings["PRESCIENT_AWS_REGION"] != "eu-west-1" || v.AWS != nil {
					t.Fatalf("%+v", v)
				}
			}},
		{name: "pod info and ephemeral", attrs: map[string]string{"stac-url": "u", "csi.storage.k8s.io/ephemeral": "true",
			"csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "1"},
			check: func(t *testing.T, v *Volume) {
				if !v.Ephemeral || v.Pod != "ns/p" {
					t.Fatalf("%+v", v)
				}
			}},
		{name: "unknown attribute", attrs: map[string]string{"stac-ur": "u"}, err: `unknown volume attribute "stac-ur"`},
		{name: "secret in attributes", attrs: map[string]string{"PRESCIENT_API_KEY": "k"}, err: "put it in the Secret"},
		{name: "AWS key in attributes", attrs: map[string]string{"aws_secret_access_key": "k"}, err: "put it in the Secret"},
		{name: "unknown secret key", secrets: map[string]string{"password": "hunter2hunter2"}, err: `unknown key "password"`},
		{name: "AWS keys", attrs: map[string]string{"stac-url": "u"}, secrets: map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"},
			check: func(t *testing.T, v *Volume) {
				if v.AWS == nil || *v.AWS != (AWSKeys{"a", "s", "t"}) {
					t.Fatalf("%+v", v.AWS)
				}
			}},
		{name: "half AWS keys", secrets: map[string]string{"AWS_ACCESS_KEY_ID": "a"}, err: "needs both"},
		{name: "AWS keys and API key", attrs: map[string]string{"PRESCIENT_ENDPOINT_URL": "http://x/"},
			secrets: map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "PRESCIENT_API_KEY": "an-api-key-value"}, err: "both AWS keys and Prescient"},
		{name: "endpoint without a secret", attrs: map[string]string{"PRESCIENT_ENDPOINT_URL": "http://x/"}, err: "neither PRESCIENT_API_KEY nor PRESCIENT_CLIENT_SECRET"},
		{name: "service principal", attrs: map[string]string{"PRESCIENT_ENDPOINT_URL": "http://x/", "PRESCIENT_CLIENT_ID": "c"},
			secrets: map[string]string{"PRESCIENT_CLIENT_SECRET": "s", "PRESCIENT_TENANT_ID": "t"},
			check: func(t *testing.T, v *Volume) {
				if !v.Prescient() || v.Settings["PRESCIENT_CLIENT_SECRET"] != "s" || v.Settings["PRESCIENT_TENANT_ID"] != "t" {
					t.Fatalf("%+v", v.Settings)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Parse(tc.attrs, tc.secrets, flags)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ErrInvalid with %q", err, tc.err)
				}
				for _, val := range tc.secrets {
					if len(val) < 8 {
						continue // too short to tell from words
					}
					if strings.Contains(err.Error(), val) {
						t.Fatalf("error %q shows a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
		})
	}
}

func TestDigests(t *testing.T) {
	a := map[string]string{"stac-url": "u", "csi.storage.k8s.io/pod.name": "p1"}
	b := map[string]string{"stac-url": "u", "csi.storage.k8s.io/pod.name": "p2"}
	s1 := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s1"}
	s2 := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s2"}
	v1, _ := Parse(a, s1, flags)
	v2, _ := Parse(b, s2, flags)
	if v1.ConfigDigest != v2.ConfigDigest {
		t.Error("pod info changed the configuration digest")
	}
	if v1.SecretDigest == v2.SecretDigest {
		t.Error("a rotated secret kept its digest")
	}
	v3, _ := Parse(map[string]string{"stac-url": "other"}, s1, flags)
	if v3.ConfigDigest == v1.ConfigDigest {
		t.Error("other attributes kept the configuration digest")
	}
}
