// Package volumecontext reads a CSI volume's attributes (the PV's
// volumeAttributes, or an inline volume's) and its Secret
// (nodePublishSecretRef) into the settings of one mount.
//
// Attributes are the mount command's flags by long name ("stac-url",
// "metadata-ttl", "memory-limit", …) plus the Prescient settings that are
// not secret (PRESCIENT_ENDPOINT_URL, PRESCIENT_CLIENT_ID, …). Secrets are
// PRESCIENT_API_KEY, or PRESCIENT_CLIENT_SECRET with a service principal's
// settings, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN].
// Anything else is refused, so a typo never silently mounts something else.
package volumecontext

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Keys of the Secret besides the Prescient settings.
const (
	AWSAccessKeyID     = "AWS_ACCESS_KEY_ID"     // #nosec G101 -- a key's name, not a credential
	AWSSecretAccessKey = "AWS_SECRET_ACCESS_KEY" // #nosec G101 -- a key's name, not a credential
	AWSSessionToken    = "AWS_SESSION_TOKEN"     // #nosec G101 -- a key's name, not a credential
)

// Attributes kubelet adds: podInfoOnMount's and an inline volume's marker.
const (
	podInfoPrefix = "csi.storage.k8s.io/"
	keyEphemeral  = "csi.storage.k8s.io/ephemeral"
	keyPodName    = "csi.storage.k8s.io/pod.name"
	keyPodNS      = "csi.storage.k8s.io/pod.namespace"
)

// secretSettings may only come from the Secret.
var secretSettings = []string{"PRESCIENT_API_KEY", "PRESCIENT_CLIENT_SECRET", "PRESCIENT_GOOGLE_CLIENT_SECRET"}

// plainSettings may come from the attributes or the Secret.
var plainSettings = []string{
	"PRESCIENT_ENDPOINT_URL", "PRESCIENT_AUTH_PROVIDER", "PRESCIENT_CLIENT_ID", "PRESCIENT_AUTH_URL",
	"PRESCIENT_TENANT_ID", "PRESCIENT_AWS_ROLE", "PRESCIENT_AWS_REGION", "PRESCIENT_SCOPES",
	"PRESCIENT_AWS_SESSION_DURATION",
}

// ErrInvalid marks a volume context or Secret that can never mount: the
// plugin answers InvalidArgument.
var ErrInvalid = errors.New("invalid volume")

// Volume is one volume's configuration.
type Volume struct {
	// Flags are mount flags by long name, as given.
	Flags map[string]string
	// Settings are PRESCIENT_* settings from the attributes and the Secret
	// (the Secret's win), secrets included.
	Settings map[string]string
	// AWS holds static bucket credentials from the Secret, or nil.
	AWS *AWSKeys
	// Ephemeral is a CSI inline volume (lives and dies with its pod).
	Ephemeral bool
	// Pod is "namespace/name" when kubelet sent pod info, for logs.
	Pod string
	// ConfigDigest identifies the attributes (pod info excluded): a
	// republish with other attributes is a different volume.
	ConfigDigest string
	// SecretDigest identifies the Secret: a republish with another one
	// rotates the live mount's credentials.
	SecretDigest string
}

// AWSKeys are static bucket credentials.
type AWSKeys struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Prescient reports whether the volume signs in to Prescient (an endpoint is set).
func (v *Volume) Prescient() bool { return v.Settings["PRESCIENT_ENDPOINT_URL"] != "" }

// Parse checks attributes and secrets. allowedFlags are the mount flags a
// volume may set. Errors wrap ErrInvalid and name keys, never values of
// secrets.
func Parse(attrs, secrets map[string]string, allowedFlags []string) (*Volume, error) {
	v := &Volume{Flags: map[string]string{}, Settings: map[string]string{}}
	var cfg []string
	for k, val := range attrs {
		switch {
		case k == keyEphemeral:
			v.Ephemeral = val == "true"
			continue
		case k == keyPodName || k == keyPodNS:
			continue
		case strings.HasPrefix(k, podInfoPrefix):
			continue // pod.uid, serviceAccount.name, tokens
		case slices.Contains(allowedFlags, k):
			v.Flags[k] = val
		case slices.Contains(plainSettings, strings.ToUpper(k)):
			v.Settings[strings.ToUpper(k)] = val
		case slices.Contains(secretSettings, strings.ToUpper(k)) || isAWSKey(k):
			return nil, fmt.Errorf("%w: attribute %q is a secret: put it in the Secret named by nodePublishSecretRef", ErrInvalid, k)
		default:
			return nil, fmt.Errorf("%w: unknown volume attribute %q (attributes are the mount command's flags by long name, e.g. stac-url, and PRESCIENT_* settings)", ErrInvalid, k)
		}
		cfg = append(cfg, k+"="+val)
	}
	if ns, name := attrs[keyPodNS], attrs[keyPodName]; name != "" {
		v.Pod = ns + "/" + name
	}
	var sec []string
	var aws AWSKeys
	for k, val := range secrets {
		uk := strings.ToUpper(k)
		switch {
		case uk == AWSAccessKeyID:
			aws.AccessKeyID = val
		case uk == AWSSecretAccessKey:
			aws.SecretAccessKey = val
		case uk == AWSSessionToken:
			aws.SessionToken = val
		case slices.Contains(secretSettings, uk) || slices.Contains(plainSettings, uk):
			v.Settings[uk] = val
		default:
			return nil, fmt.Errorf("%w: unknown key %q in the Secret (expected PRESCIENT_API_KEY, PRESCIENT_CLIENT_SECRET with the service principal's settings, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", ErrInvalid, k)
		}
		sec = append(sec, uk+"="+val)
	}
	if aws != (AWSKeys{}) {
		if aws.AccessKeyID == "" || aws.SecretAccessKey == "" {
			return nil, fmt.Errorf("%w: the Secret needs both %s and %s", ErrInvalid, AWSAccessKeyID, AWSSecretAccessKey)
		}
		if v.Settings["PRESCIENT_API_KEY"] != "" || v.Settings["PRESCIENT_CLIENT_SECRET"] != "" {
			return nil, fmt.Errorf("%w: the Secret has both AWS keys and Prescient credentials: bucket credentials come from one of them", ErrInvalid)
		}
		v.AWS = &aws
	}
	if v.Prescient() && v.Settings["PRESCIENT_API_KEY"] == "" && v.Settings["PRESCIENT_CLIENT_SECRET"] == "" {
		return nil, fmt.Errorf("%w: PRESCIENT_ENDPOINT_URL is set but the Secret has neither PRESCIENT_API_KEY nor PRESCIENT_CLIENT_SECRET (a volume cannot sign in interactively)", ErrInvalid)
	}
	v.ConfigDigest, v.SecretDigest = digest(cfg), digest(sec)
	return v, nil
}

func isAWSKey(k string) bool {
	switch strings.ToUpper(k) {
	case AWSAccessKeyID, AWSSecretAccessKey, AWSSessionToken:
		return true
	}
	return false
}

func digest(kvs []string) string {
	slices.Sort(kvs)
	h := sha256.New()
	for _, kv := range kvs {
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// IsSecretKey reports whether an attribute or Secret key holds a secret,
// so that logs can mask it wherever it was (wrongly) put.
func IsSecretKey(k string) bool {
	return slices.Contains(secretSettings, strings.ToUpper(k)) || isAWSKey(k)
}
