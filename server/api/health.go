package api

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/server/store"
)

// healthz answers 200 {"status":"ok"} while the store's last write reached
// storage, else 503 {"status":"unhealthy","error":...} until a write
// succeeds again (a full or failing disk), and 503 while a PostgreSQL
// store's database does not answer.
func (a *API) healthz(c *fiber.Ctx) error {
	if err := a.svc.Health(); err != nil {
		// The detail (with file paths) is in the log; an unauthenticated
		// probe learns only what kind of failure it is.
		msg := "the last write failed: storage failed"
		switch {
		case errors.Is(err, store.ErrStorageFull):
			msg = "the last write failed: storage full"
		case errors.Is(err, store.ErrStorageUnreachable):
			msg = "the database does not answer"
		}
		return c.Status(http.StatusServiceUnavailable).JSON(fiber.Map{"status": "unhealthy", "error": msg})
	}
	return c.JSON(fiber.Map{"status": "ok"})
}

// backup streams a consistent copy of the database (admin only): GET
// /backup answers the bbolt file as application/octet-stream.
func (a *API) backup(c *fiber.Ctx) error {
	if err := a.svc.CanBackup(); err != nil {
		return err
	}
	op := requestOperator(c)
	name := fmt.Sprintf("doorbell-%s.db", a.cfg.Now().UTC().Format("20060102T150405Z"))
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	conn := c.Context().Conn()
	log := a.logger
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		// The copy may take longer than the write timeout: roll the
		// deadline with the writes.
		dw := deadlineWriter{w: w, conn: conn}
		n, err := a.svc.Backup(&dw)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			log.Error("backup failed", "operator", op.name, "bytes", n, "err", err)
			return
		}
		log.Info("backup sent", "operator", op.name, "bytes", n)
	})
	return nil
}

// deadlineWriter extends the connection's write deadline before each write.
type deadlineWriter struct {
	w    *bufio.Writer
	conn interface{ SetWriteDeadline(time.Time) error }
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.conn != nil {
		d.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	}
	return d.w.Write(p)
}
