#include "hw/sysctl.h"

#include <string.h>

#include "util.h"

#define PORT92_A20 0x02
#define RCR_SYS_RST 0x02  /* hard reset when RST_CPU rises */
#define RCR_RST_CPU 0x04
#define RCR_FULL_RST 0x08
#define RCR_KEPT (RCR_SYS_RST | RCR_FULL_RST)

static void port92_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    memset(data, 0xFF, len);
    *(uint8_t *)data = PORT92_A20;
}

static void port92_write(void *opaque, uint64_t off, const void *data,
                         unsigned len)
{
}

static void rcr_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct sysctl *s = opaque;
    memset(data, 0xFF, len);
    pthread_mutex_lock(&s->lock);
    *(uint8_t *)data = s->reset_control;
    pthread_mutex_unlock(&s->lock);
}

static void rcr_write(void *opaque, uint64_t off, const void *data,
                      unsigned len)
{
    struct sysctl *s = opaque;
    uint8_t val = *(const uint8_t *)data;
    pthread_mutex_lock(&s->lock);
    s->reset_control = val & RCR_KEPT;
    pthread_mutex_unlock(&s->lock);
    /* Soft and hard reset are the same thing for a VM. */
    if ((val & RCR_RST_CPU) && s->cfg.reset_request)
        s->cfg.reset_request(s->cfg.opaque);
}

static void post_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    memset(data, 0xFF, len);
}

static void post_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
}

const struct bus_ops sysctl_port92_ops = {
    .read = port92_read, .write = port92_write};
const struct bus_ops sysctl_reset_control_ops = {
    .read = rcr_read, .write = rcr_write};
const struct bus_ops sysctl_post_ops = {
    .read = post_read, .write = post_write};

int sysctl_init(struct sysctl *s, const struct sysctl_config *cfg)
{
    memset(s, 0, sizeof(*s));
    if (cfg)
        s->cfg = *cfg;
    if (pthread_mutex_init(&s->lock, NULL)) {
        report_error("cannot create the system-control lock");
        return -1;
    }
    return 0;
}

void sysctl_destroy(struct sysctl *s)
{
    pthread_mutex_destroy(&s->lock);
}

void sysctl_reset(struct sysctl *s)
{
    pthread_mutex_lock(&s->lock);
    s->reset_control = 0;
    pthread_mutex_unlock(&s->lock);
}
