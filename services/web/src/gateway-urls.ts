/**
 * The WebSocket URLs the page may use: `?gateway=` first when given (to use another replica
 * while keeping this page's origin, and so its stored session), then its own gateway, then the
 * replicas named in `?replicas=` (a comma list of ws:// or wss:// URLs). The client moves to the
 * next URL each time it reconnects, so a page whose gateway dies carries on with another replica.
 *
 * Only replicas on the page's own host name are taken: the client sends its session token to
 * every URL it uses, and a link must not be able to send it elsewhere.
 */
export function gatewayUrls(
  location: Pick<Location, 'protocol' | 'host' | 'hostname' | 'search'>,
): string[] {
  const own = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const params = new URLSearchParams(location.search);
  const listed = [params.get('gateway') ?? '', own, params.get('replicas') ?? ''].join(',');
  const urls = listed
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => {
      try {
        const url = new URL(entry);
        return /^wss?:$/.test(url.protocol) && url.hostname === location.hostname;
      } catch {
        return false;
      }
    });
  return [...new Set(urls)];
}
