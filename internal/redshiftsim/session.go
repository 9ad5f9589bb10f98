package redshiftsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
)

const (
	startupTimeout = 30 * time.Second
	cancelTimeout  = 5 * time.Second
	copyChunkSize  = 64 << 10
)

// session is one client connection and the PostgreSQL connection behind it.
//
// Two goroutines move messages: the session's own (run) reads the client and
// writes the backend; readBackend reads the backend and writes the client.
// When the stand-in executes UNLOAD or COPY itself it first waits until every
// forwarded query has been answered, then "diverts" the backend's messages to
// itself (see divert) so it can run SQL on the same backend connection, as the
// same user and inside the client's transaction.
type session struct {
	srv    *Server
	log    *zap.Logger
	client net.Conn
	cb     *pgproto3.Backend // speaks to the client
	cbMu   sync.Mutex        // serialises writes to the client

	backend      net.Conn
	fe           *pgproto3.Frontend // speaks to PostgreSQL
	backendPID   uint32
	backendKey   []byte
	backendDial  pgconn.DialFunc
	backendAddr  [2]string // network, address
	user         string    // the database user the session runs as
	pid          uint32    // what the client sees in BackendKeyData
	secret       []byte
	closeBackend func()

	mu          sync.Mutex
	idle        *sync.Cond // signalled when outstanding drops to 0 or the reader stops
	outstanding int        // Query and Sync messages forwarded whose ReadyForQuery has not been relayed
	txStatus    byte
	div         *divert
	readerDone  chan struct{}
	readerErr   error
	opCancel    context.CancelFunc

	// Extended-protocol state, owned by run.
	ourStmts   map[string]Statement
	ourPortals map[string]Statement
	unsynced   bool // extended messages forwarded since the last Sync
	local      bool // answering the current Sync batch ourselves
	skipToSync bool // an error ended the current batch
}

// divert hands backend messages to the session goroutine one at a time: the
// reader waits for ack before receiving again, because pgproto3 reuses its
// buffers on the next Receive.
type divert struct {
	msgs chan pgproto3.BackendMessage
	ack  chan struct{}
	done chan struct{} // closed when the divert ends
	held bool
}

func (s *Server) handle(conn net.Conn) {
	log := s.log.With(zap.String("remote", conn.RemoteAddr().String()))
	_ = conn.SetDeadline(time.Now().Add(startupTimeout))
	cb := pgproto3.NewBackend(conn, conn)
	var params map[string]string
	for params == nil {
		msg, err := cb.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			// No TLS: clients with sslmode=disable or prefer carry on in plaintext.
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.CancelRequest:
			s.cancelRequest(m)
			return
		case *pgproto3.StartupMessage:
			params = make(map[string]string, len(m.Parameters))
			for k, v := range m.Parameters {
				params[k] = v
			}
		default:
			return
		}
	}
	user := params["user"]
	if user == "" {
		sendFatal(cb, &Error{Code: codeInvalidAuthSpec, Message: "no PostgreSQL user name specified in startup packet"})
		return
	}
	if _, ok := params["replication"]; ok {
		sendFatal(cb, &Error{Code: codeFeatureNotSupport, Message: "replication connections are not supported by the sandbox stand-in"})
		return
	}
	cb.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := cb.Flush(); err != nil {
		return
	}
	if err := cb.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return
	}
	msg, err := cb.Receive()
	if err != nil {
		return
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		sendFatal(cb, &Error{Code: codeProtocolViolation, Message: fmt.Sprintf("expected password response, got message type %T", msg)})
		return
	}
	ss, perr := s.openSession(conn, cb, log, user, pw.Password, params)
	if perr != nil {
		log.Info("authentication failed", zap.String("event", "redshiftsim.auth_failed"),
			zap.String("user", user), zap.String("error_code", perr.Code), zap.String("error", perr.Message))
		sendFatal(cb, perr)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	ss.run()
}

func sendFatal(cb *pgproto3.Backend, e *Error) {
	e.Severity = "FATAL"
	cb.Send(e.response())
	_ = cb.Flush()
}

// openSession authenticates the client and opens its backend connection:
// as the user itself (PostgreSQL checks the password), or, for temporary
// credentials (IAM:user / IAMA:user), as the superuser switched to the user
// once the moto extension has confirmed the credentials.
func (s *Server) openSession(conn net.Conn, cb *pgproto3.Backend, log *zap.Logger, user, password string, params map[string]string) (*session, *Error) {
	ctx, cancel := context.WithTimeout(s.ctx, startupTimeout)
	defer cancel()

	pcfg := s.pgCfg.Copy()
	pcfg.RuntimeParams = map[string]string{}
	for k, v := range s.pgCfg.RuntimeParams {
		pcfg.RuntimeParams[k] = v
	}
	for k, v := range params {
		switch k {
		case "user", "database", "options":
		default:
			pcfg.RuntimeParams[k] = v
		}
	}
	// Redshift treats backslashes in literals as escapes and reports
	// standard_conforming_strings off; run PostgreSQL the same way.
	pcfg.RuntimeParams["standard_conforming_strings"] = "off"
	pcfg.RuntimeParams["escape_string_warning"] = "off"
	pcfg.OnNotice = nil
	pcfg.OnNotification = nil

	dbUser, autoCreate := user, false
	switch {
	case strings.HasPrefix(user, "IAM:"), strings.HasPrefix(user, "IAMA:"):
		got, err := s.aws.verifyTemporaryCredentials(ctx, user, password)
		if err != nil {
			return nil, &Error{Code: codeInvalidAuthSpec, Message: "temporary credentials for " + user + " could not be verified: " + err.Error()}
		}
		if got == "" {
			return nil, &Error{Code: codeInvalidPassword, Message: fmt.Sprintf("password authentication failed for user %q", user)}
		}
		dbUser, autoCreate = got, strings.HasPrefix(user, "IAMA:")
	default:
		pcfg.User = user
		pcfg.Password = password
	}

	pc, err := pgconn.ConnectConfig(ctx, pcfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return nil, &Error{Code: pgErr.Code, Message: pgErr.Message, Detail: pgErr.Detail, Hint: pgErr.Hint}
		}
		return nil, &Error{Code: codeCannotConnectNow, Message: "the database behind the sandbox stand-in is not reachable"}
	}
	if dbUser != user {
		ident := pgx.Identifier{dbUser}.Sanitize()
		var sql string
		if autoCreate {
			sql = fmt.Sprintf(`DO $redshiftsim$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s LOGIN; END IF; END$redshiftsim$;`,
				sqlLiteral(dbUser), ident)
		}
		sql += "SET SESSION AUTHORIZATION " + ident
		if _, err := pc.Exec(ctx, sql).ReadAll(); err != nil {
			pc.Close(context.Background())
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				return nil, &Error{Code: pgErr.Code, Message: pgErr.Message}
			}
			return nil, &Error{Code: codeConnectionFailure, Message: "switch to user " + dbUser + ": " + err.Error()}
		}
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, &Error{Code: codeConnectionFailure, Message: "take over backend connection: " + err.Error()}
	}

	ss := &session{
		srv:         s,
		log:         log.With(zap.String("user", dbUser)),
		client:      conn,
		cb:          cb,
		backend:     hc.Conn,
		fe:          hc.Frontend,
		backendPID:  hc.PID,
		backendKey:  hc.SecretKey,
		backendDial: hc.Config.DialFunc,
		user:        dbUser,
		txStatus:    'I',
		readerDone:  make(chan struct{}),
		ourStmts:    map[string]Statement{},
		ourPortals:  map[string]Statement{},
	}
	ss.idle = sync.NewCond(&ss.mu)
	ss.backendAddr[0], ss.backendAddr[1] = hc.Conn.RemoteAddr().Network(), hc.Conn.RemoteAddr().String()
	if ss.backendAddr[0] == "unix" {
		ss.backendAddr[0], ss.backendAddr[1] = pgconn.NetworkAddress(hc.Config.Host, hc.Config.Port)
	}
	var once sync.Once
	ss.closeBackend = func() { once.Do(func() { hc.Conn.Close() }) }
	if !s.register(ss) {
		ss.closeBackend()
		return nil, &Error{Code: codeAdminShutdown, Message: "terminating connection due to administrator command"}
	}

	cb.Send(&pgproto3.AuthenticationOk{})
	for k, v := range hc.ParameterStatuses {
		cb.Send(&pgproto3.ParameterStatus{Name: k, Value: v})
	}
	cb.Send(&pgproto3.BackendKeyData{ProcessID: ss.pid, SecretKey: ss.secret})
	cb.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := cb.Flush(); err != nil {
		s.unregister(ss)
		ss.closeBackend()
		return nil, &Error{Code: codeConnectionFailure, Message: "client went away"}
	}
	ss.log.Info("session started", zap.String("event", "redshiftsim.session_started"), zap.Uint32("pid", ss.pid))
	return ss, nil
}

// run moves client messages to the backend until either side goes away.
func (ss *session) run() {
	go ss.readBackend()
	defer func() {
		ss.srv.unregister(ss)
		ss.closeBackend()
		<-ss.readerDone
		ss.log.Info("session ended", zap.String("event", "redshiftsim.session_ended"), zap.Uint32("pid", ss.pid))
	}()
	for {
		msg, err := ss.cb.Receive()
		if err != nil {
			// Client gone: let PostgreSQL end the backend cleanly.
			ss.fe.Send(&pgproto3.Terminate{})
			_ = ss.fe.Flush()
			return
		}
		if err := ss.dispatch(msg); err != nil {
			if !errors.Is(err, errTerminate) {
				ss.log.Debug("session aborted", zap.String("event", "redshiftsim.session_aborted"), zap.Error(err))
			}
			return
		}
	}
}

var errTerminate = errors.New("client terminated the session")

func (ss *session) dispatch(msg pgproto3.FrontendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.Query:
		return ss.handleQuery(m.String)
	case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close, *pgproto3.Sync, *pgproto3.Flush:
		return ss.extended(msg)
	case *pgproto3.Terminate:
		ss.fe.Send(m)
		_ = ss.fe.Flush()
		return errTerminate
	default:
		// CopyData, CopyDone, CopyFail, FunctionCall: part of a forwarded exchange.
		ss.fe.Send(m)
		return ss.fe.Flush()
	}
}

// readBackend relays backend messages to the client, or to the session
// goroutine while it diverts them.
func (ss *session) readBackend() {
	defer close(ss.readerDone)
	for {
		msg, err := ss.fe.Receive()
		if err != nil {
			ss.mu.Lock()
			ss.readerErr = err
			ss.idle.Broadcast()
			ss.mu.Unlock()
			// The backend is gone; so is the session.
			ss.client.Close()
			return
		}
		rfq, isRFQ := msg.(*pgproto3.ReadyForQuery)
		ss.mu.Lock()
		if isRFQ {
			ss.txStatus = rfq.TxStatus
		}
		d := ss.div
		ss.mu.Unlock()
		if d != nil {
			select {
			case d.msgs <- msg:
				<-d.ack
				continue
			case <-d.done:
				// The divert ended before taking this (asynchronous) message.
			}
		}
		ss.cbMu.Lock()
		ss.cb.Send(msg)
		if ss.fe.ReadBufferLen() == 0 || isRFQ {
			_ = ss.cb.Flush()
		}
		ss.cbMu.Unlock()
		if isRFQ {
			ss.mu.Lock()
			if ss.outstanding > 0 {
				ss.outstanding--
			}
			if ss.outstanding == 0 {
				ss.idle.Broadcast()
			}
			ss.mu.Unlock()
		}
	}
}

// waitIdle waits until every forwarded query has been answered.
func (ss *session) waitIdle() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for ss.outstanding > 0 && ss.readerErr == nil {
		ss.idle.Wait()
	}
	return ss.readerErr
}

func (ss *session) tx() byte {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.txStatus
}

func (ss *session) beginDivert() {
	ss.mu.Lock()
	ss.div = &divert{msgs: make(chan pgproto3.BackendMessage), ack: make(chan struct{}), done: make(chan struct{})}
	ss.mu.Unlock()
}

func (ss *session) endDivert() {
	ss.mu.Lock()
	d := ss.div
	ss.div = nil
	ss.mu.Unlock()
	if d == nil {
		return
	}
	if d.held {
		d.ack <- struct{}{}
	}
	close(d.done)
}

// recv returns the next diverted backend message, relaying notices and
// parameter changes to the client on the way. The message is valid until
// the next call.
func (ss *session) recv() (pgproto3.BackendMessage, error) {
	d := ss.div
	for {
		if d.held {
			d.held = false
			d.ack <- struct{}{}
		}
		select {
		case msg := <-d.msgs:
			d.held = true
			switch msg.(type) {
			case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
				ss.sendClient(msg)
				continue
			}
			return msg, nil
		case <-ss.readerDone:
			return nil, fmt.Errorf("backend connection lost: %w", ss.readerErr)
		}
	}
}

func (ss *session) sendClient(msgs ...pgproto3.BackendMessage) {
	ss.cbMu.Lock()
	defer ss.cbMu.Unlock()
	for _, m := range msgs {
		ss.cb.Send(m)
	}
	if err := ss.cb.Flush(); err != nil {
		ss.log.Debug("write to client", zap.String("event", "redshiftsim.client_write_failed"), zap.Error(err))
	}
}

func (ss *session) sendError(e *Error) { ss.sendClient(e.response()) }

// cancel stops what the session is doing: the stand-in's own work through
// its context, PostgreSQL's through a CancelRequest to the backend.
func (ss *session) cancel(ctx context.Context) {
	ss.mu.Lock()
	if ss.opCancel != nil {
		ss.opCancel()
	}
	ss.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, cancelTimeout)
	defer cancel()
	conn, err := ss.backendDial(ctx, ss.backendAddr[0], ss.backendAddr[1])
	if err != nil {
		ss.log.Info("forward cancel", zap.String("event", "redshiftsim.cancel_failed"), zap.Error(err))
		return
	}
	defer conn.Close()
	buf, err := (&pgproto3.CancelRequest{ProcessID: ss.backendPID, SecretKey: ss.backendKey}).Encode(nil)
	if err != nil {
		return
	}
	_ = conn.SetDeadline(time.Now().Add(cancelTimeout))
	if _, err := conn.Write(buf); err != nil {
		return
	}
	// PostgreSQL closes the connection once it has processed the request.
	_, _ = conn.Read(make([]byte, 1))
}

// handleQuery forwards a simple query, unless it holds a statement the
// stand-in executes itself.
func (ss *session) handleQuery(sql string) error {
	parts, ok := splitStatements(sql)
	if !ok {
		parts = []string{sql}
	}
	ours := false
	for _, p := range parts {
		if st, perr := Classify(p); st != nil || perr != nil {
			ours = true
		}
	}
	if !ours {
		ss.mu.Lock()
		ss.outstanding++
		ss.mu.Unlock()
		ss.fe.Send(&pgproto3.Query{String: sql})
		return ss.fe.Flush()
	}
	if err := ss.waitIdle(); err != nil {
		return err
	}
	ss.beginDivert()
	defer ss.endDivert()
	failed := false
	for _, p := range parts {
		stmt, perr := Classify(p)
		switch {
		case perr != nil:
			ss.sendError(perr)
			failed = true
		case stmt == nil:
			ok, err := ss.passThrough(p)
			if err != nil {
				return err
			}
			failed = !ok
		default:
			ok, err := ss.executeAndReport(stmt)
			if err != nil {
				return err
			}
			failed = !ok
		}
		if failed {
			break
		}
	}
	if failed && ss.tx() == 'T' {
		if err := ss.abortTransaction(); err != nil {
			return err
		}
	}
	ss.sendClient(&pgproto3.ReadyForQuery{TxStatus: ss.tx()})
	return nil
}

// executeAndReport runs one of our statements and sends its outcome (not
// ReadyForQuery). ok is false when the statement failed; err is fatal.
func (ss *session) executeAndReport(stmt Statement) (ok bool, err error) {
	if ss.tx() == 'E' {
		ss.sendError(&Error{Code: codeInFailedSQLTx, Message: "current transaction is aborted, commands ignored until end of transaction block"})
		return false, nil
	}
	ctx, cancel := context.WithCancel(ss.srv.ctx)
	ss.mu.Lock()
	ss.opCancel = cancel
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.opCancel = nil
		ss.mu.Unlock()
		cancel()
	}()
	start := time.Now()
	var res result
	var perr *Error
	switch st := stmt.(type) {
	case *Unload:
		res, perr = ss.execUnload(ctx, st)
	case *Copy:
		res, perr = ss.execCopy(ctx, st)
	}
	if perr != nil && ctx.Err() != nil && ss.srv.ctx.Err() == nil && perr.Code != codeQueryCanceled {
		perr = &Error{Code: codeQueryCanceled, Message: "canceling statement due to user request"}
	}
	if errors.Is(res.fatal, errBackendLost) {
		return false, res.fatal
	}
	fields := []zap.Field{zap.String("event", "redshiftsim."+res.kind), zap.Int64("rows", res.rows),
		zap.Int64("duration_ms", time.Since(start).Milliseconds())}
	if res.location != "" {
		fields = append(fields, zap.String("location", res.location))
	}
	if perr != nil {
		ss.log.Info("statement refused", append(fields, zap.String("error_code", perr.Code), zap.String("error", perr.Message))...)
		ss.sendError(perr)
		return false, nil
	}
	ss.log.Info("statement executed", fields...)
	if res.notice != "" {
		ss.sendClient(&pgproto3.NoticeResponse{Severity: "INFO", SeverityUnlocalized: "INFO", Code: "00000", Message: res.notice})
	}
	ss.sendClient(&pgproto3.CommandComplete{CommandTag: []byte(res.tag)})
	return true, nil
}

// result is what executing UNLOAD or COPY produced.
type result struct {
	kind     string // unload or copy, for logs
	location string // s3://bucket/prefix, for logs
	tag      string
	notice   string
	rows     int64
	fatal    error // the backend connection broke
}

var errBackendLost = errors.New("backend connection lost")

// passThrough runs one statement of a multi-statement query on the backend,
// relaying its results except ReadyForQuery. ok is false if it failed.
func (ss *session) passThrough(sql string) (ok bool, err error) {
	ss.fe.Send(&pgproto3.Query{String: sql})
	if err := ss.fe.Flush(); err != nil {
		return false, err
	}
	ok = true
	for {
		msg, err := ss.recv()
		if err != nil {
			return false, err
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			return ok, nil
		case *pgproto3.ErrorResponse:
			ok = false
			ss.sendClient(m)
		case *pgproto3.CopyInResponse:
			ss.fe.Send(&pgproto3.CopyFail{Message: "COPY FROM STDIN cannot share a query string with UNLOAD or COPY FROM S3 in the sandbox stand-in"})
			if err := ss.fe.Flush(); err != nil {
				return false, err
			}
		default:
			ss.sendClient(m)
		}
	}
}

// abortTransaction puts the client's open transaction into the failed state,
// as Redshift does when a statement inside it fails.
func (ss *session) abortTransaction() error {
	_, err := ss.simpleQuery(`DO $redshiftsim$BEGIN RAISE EXCEPTION 'redshiftsim: statement failed, transaction aborted'; END$redshiftsim$`, nil, nil)
	var pe *Error
	if errors.As(err, &pe) {
		return nil
	}
	return err
}

// simpleQuery runs sql on the diverted backend. onDesc and onRow (either may
// be nil) see the result; the values passed to onRow are valid only during
// the call. A statement error comes back as *Error after the backend is
// ready again; any other error means the backend connection is unusable.
func (ss *session) simpleQuery(sql string, onDesc func([]pgproto3.FieldDescription) error, onRow func([][]byte) error) (tag string, err error) {
	ss.fe.Send(&pgproto3.Query{String: sql})
	if err := ss.fe.Flush(); err != nil {
		return "", fmt.Errorf("%w: %v", errBackendLost, err)
	}
	var stmtErr error
	for {
		msg, err := ss.recv()
		if err != nil {
			return "", fmt.Errorf("%w: %v", errBackendLost, err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			if onDesc != nil && stmtErr == nil {
				stmtErr = onDesc(m.Fields)
			}
		case *pgproto3.DataRow:
			if onRow != nil && stmtErr == nil {
				stmtErr = onRow(m.Values)
			}
		case *pgproto3.CommandComplete:
			tag = string(m.CommandTag)
		case *pgproto3.ErrorResponse:
			if stmtErr == nil {
				stmtErr = errorFromBackend(m)
			}
		case *pgproto3.CopyInResponse:
			ss.fe.Send(&pgproto3.CopyFail{Message: "not expected here"})
			if err := ss.fe.Flush(); err != nil {
				return "", fmt.Errorf("%w: %v", errBackendLost, err)
			}
		case *pgproto3.ReadyForQuery:
			return tag, stmtErr
		}
	}
}

// copyIn runs a COPY ... FROM STDIN on the diverted backend and feeds it the
// data produce writes.
func (ss *session) copyIn(sql string, produce func(write func([]byte) error) error) (tag string, err error) {
	ss.fe.Send(&pgproto3.Query{String: sql})
	if err := ss.fe.Flush(); err != nil {
		return "", fmt.Errorf("%w: %v", errBackendLost, err)
	}
	var stmtErr error
	for {
		msg, err := ss.recv()
		if err != nil {
			return "", fmt.Errorf("%w: %v", errBackendLost, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyInResponse:
			var buf []byte
			write := func(b []byte) error {
				buf = append(buf, b...)
				if len(buf) < copyChunkSize {
					return nil
				}
				ss.fe.Send(&pgproto3.CopyData{Data: buf})
				buf = buf[:0]
				return ss.fe.Flush()
			}
			perr := produce(write)
			if perr == nil && len(buf) > 0 {
				ss.fe.Send(&pgproto3.CopyData{Data: buf})
			}
			if perr != nil {
				ss.fe.Send(&pgproto3.CopyFail{Message: "redshiftsim: " + perr.Error()})
				stmtErr = perr
			} else {
				ss.fe.Send(&pgproto3.CopyDone{})
			}
			if err := ss.fe.Flush(); err != nil {
				return "", fmt.Errorf("%w: %v", errBackendLost, err)
			}
		case *pgproto3.CommandComplete:
			tag = string(m.CommandTag)
		case *pgproto3.ErrorResponse:
			if stmtErr == nil {
				stmtErr = errorFromBackend(m)
			}
		case *pgproto3.ReadyForQuery:
			return tag, stmtErr
		}
	}
}

func errorFromBackend(m *pgproto3.ErrorResponse) *Error {
	return &Error{Code: m.Code, Message: m.Message, Detail: m.Detail, Hint: m.Hint}
}

// sqlLiteral quotes s as a literal that means s whatever
// standard_conforming_strings is.
func sqlLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "E'" + strings.ReplaceAll(s, "'", "''") + "'"
}
