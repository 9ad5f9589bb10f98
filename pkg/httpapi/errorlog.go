package httpapi

import (
	"fmt"
	"log"
	"strings"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/logging"
)

// errorLog carries what net/http (a *log.Logger) and promhttp (a Println) report into zap, as
// warnings with an event, so they reach the journal like every other line.
type errorLog struct {
	log   *zap.Logger
	event string
	msg   string
}

// Println implements promhttp.Logger.
func (e errorLog) Println(v ...any) { e.emit(fmt.Sprintln(v...)) }

// Write receives the lines of the *log.Logger from stdLog.
func (e errorLog) Write(p []byte) (int, error) {
	e.emit(string(p))
	return len(p), nil
}

func (e errorLog) stdLog() *log.Logger { return log.New(e, "", 0) }

func (e errorLog) emit(s string) {
	e.log.Warn(e.msg, logging.Event(e.event), zap.String("error", strings.TrimSpace(s)))
}
