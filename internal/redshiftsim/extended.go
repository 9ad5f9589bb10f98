package redshiftsim

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// extended handles the extended query protocol. Messages are forwarded to
// PostgreSQL, except for statements the stand-in executes itself (UNLOAD,
// COPY FROM S3): a Sync batch that starts with one of those is answered by
// the stand-in ("local" batch). A batch that mixes them with forwarded
// statements is refused, because the stand-in cannot interleave its answers
// with PostgreSQL's.
func (ss *session) extended(msg pgproto3.FrontendMessage) error {
	if _, isSync := msg.(*pgproto3.Sync); ss.skipToSync && !isSync {
		return nil
	}
	switch m := msg.(type) {
	case *pgproto3.Parse:
		stmt, perr := Classify(m.Query)
		if stmt == nil && perr == nil {
			delete(ss.ourStmts, m.Name)
			return ss.forwardExtended(m)
		}
		if err := ss.enterLocal(); err != nil {
			return ss.failBatch(err)
		}
		if perr != nil {
			return ss.failBatch(perr)
		}
		ss.ourStmts[m.Name] = stmt
		ss.sendClient(&pgproto3.ParseComplete{})
	case *pgproto3.Bind:
		stmt, ok := ss.ourStmts[m.PreparedStatement]
		if !ok {
			delete(ss.ourPortals, m.DestinationPortal)
			return ss.forwardExtended(m)
		}
		if err := ss.enterLocal(); err != nil {
			return ss.failBatch(err)
		}
		if len(m.Parameters) > 0 {
			return ss.failBatch(&Error{Code: codeProtocolViolation,
				Message: fmt.Sprintf("bind message supplies %d parameters, but prepared statement %q requires 0", len(m.Parameters), m.PreparedStatement)})
		}
		ss.ourPortals[m.DestinationPortal] = stmt
		ss.sendClient(&pgproto3.BindComplete{})
	case *pgproto3.Describe:
		_, isStmt := ss.ourStmts[m.Name]
		_, isPortal := ss.ourPortals[m.Name]
		switch {
		case m.ObjectType == 'S' && isStmt:
			if err := ss.enterLocal(); err != nil {
				return ss.failBatch(err)
			}
			ss.sendClient(&pgproto3.ParameterDescription{}, &pgproto3.NoData{})
		case m.ObjectType == 'P' && isPortal:
			if err := ss.enterLocal(); err != nil {
				return ss.failBatch(err)
			}
			ss.sendClient(&pgproto3.NoData{})
		default:
			return ss.forwardExtended(m)
		}
	case *pgproto3.Execute:
		stmt, ok := ss.ourPortals[m.Portal]
		if !ok {
			return ss.forwardExtended(m)
		}
		if err := ss.enterLocal(); err != nil {
			return ss.failBatch(err)
		}
		ss.beginDivert()
		ok, err := ss.executeAndReport(stmt)
		if err == nil && !ok && ss.tx() == 'T' {
			err = ss.abortTransaction()
		}
		ss.endDivert()
		if err != nil {
			return err
		}
		if !ok {
			ss.skipToSync = true
		}
	case *pgproto3.Close:
		names := ss.ourStmts
		if m.ObjectType == 'P' {
			names = ss.ourPortals
		}
		if _, ours := names[m.Name]; !ours {
			return ss.forwardExtended(m)
		}
		delete(names, m.Name)
		if err := ss.enterLocal(); err != nil {
			return ss.failBatch(err)
		}
		ss.sendClient(&pgproto3.CloseComplete{})
	case *pgproto3.Flush:
		if !ss.local {
			ss.fe.Send(m)
			return ss.fe.Flush()
		}
	case *pgproto3.Sync:
		ss.skipToSync = false
		delete(ss.ourPortals, "") // the unnamed portal ends with the batch
		if ss.local {
			ss.local = false
			ss.sendClient(&pgproto3.ReadyForQuery{TxStatus: ss.tx()})
			return nil
		}
		ss.unsynced = false
		ss.mu.Lock()
		ss.outstanding++
		ss.mu.Unlock()
		ss.fe.Send(m)
		return ss.fe.Flush()
	}
	return nil
}

// forwardExtended passes a message on to PostgreSQL, unless the current
// batch is answered locally.
func (ss *session) forwardExtended(m pgproto3.FrontendMessage) error {
	if ss.local {
		return ss.failBatch(errMixedBatch)
	}
	ss.unsynced = true
	ss.fe.Send(m)
	return nil // flushed at Sync or Flush
}

var errMixedBatch = &Error{
	Code: codeFeatureNotSupport,
	Message: "the sandbox stand-in cannot mix UNLOAD or COPY FROM S3 with other statements before a Sync " +
		"(send them in their own batch, or use the simple query protocol)",
}

// enterLocal makes the current batch a local one. That is possible only when
// nothing of it has been forwarded yet.
func (ss *session) enterLocal() *Error {
	if ss.local {
		return nil
	}
	if ss.unsynced {
		return errMixedBatch
	}
	if err := ss.waitIdle(); err != nil {
		return &Error{Code: codeConnectionFailure, Message: "backend connection lost"}
	}
	ss.local = true
	return nil
}

// failBatch reports an error for the current batch and skips to its Sync.
func (ss *session) failBatch(e *Error) error {
	ss.sendError(e)
	ss.skipToSync = true
	return nil
}
