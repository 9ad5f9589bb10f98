package daemon

import (
	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/logging"
)

// warnPermissions logs config.insecure_permissions for the configuration file and the secret
// files it names when every user of the host may read or change them (config.PermissionWarnings).
// It runs at start and at each reload: the modes may have changed with the file.
func warnPermissions(log *zap.Logger, cfg *config.Config) {
	for _, w := range cfg.PermissionWarnings() {
		log.Warn(w.Reason, logging.Event("config.insecure_permissions"), zap.String("file", w.File), zap.String("kind", w.Kind),
			zap.String("mode", w.ModeString()), zap.Strings("keys", w.Keys), zap.String("fix", w.Fix))
	}
}
