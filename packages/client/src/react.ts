import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ChorusClient } from './chorus-client.js';
import { EMPTY_CONVERSATION } from './conversation.js';
import type { ChorusClientOptions, ChorusState } from './types.js';

export interface UseChorus extends ChorusState {
  /** The client, once the component has mounted (null during the first render). */
  client: ChorusClient | null;
  /**
   * Sends a chat message; returns its id (undefined before the client exists). Throws a
   * RangeError for an empty message or one over the gateway's `maxMessageBytes`.
   */
  send: (text: string) => string | undefined;
  /** Stops the answer to a message. */
  cancel: (id: string) => void;
  /** Connects now, skipping a backoff wait (or taking over again after 4001). */
  reconnect: () => void;
}

const noop = () => undefined;

/**
 * The Chorus session of a component: connection, replica, conversation with streaming replies,
 * agent activity. The client is created when the component mounts and closed when it unmounts,
 * with all of its timers and listeners; a change of `url`/`urls` starts a new one. Other options
 * are read once per client.
 */
export function useChorus(options: ChorusClientOptions): UseChorus {
  const optionsRef = useRef(options);
  optionsRef.current = options;
  const key = (options.urls ?? [options.url ?? '']).join(' ');
  const [client, setClient] = useState<ChorusClient | null>(null);

  useEffect(() => {
    const created = new ChorusClient(optionsRef.current);
    setClient(created);
    created.connect();
    return () => {
      created.close();
      setClient((current) => (current === created ? null : current));
    };
  }, [key]);

  const subscribe = useCallback(
    (onChange: () => void) => (client ? client.on('change', onChange) : noop),
    [client],
  );
  const getSnapshot = useCallback(() => client?.state ?? initialState(key), [client, key]);
  const state = useSyncExternalStore(subscribe, getSnapshot, getSnapshot);

  const send = useCallback((text: string) => client?.chat(text), [client]);
  const cancel = useCallback((id: string) => client?.cancel(id), [client]);
  const reconnect = useCallback(() => client?.reconnectNow(), [client]);

  return { ...state, client, send, cancel, reconnect };
}

const initialStates = new Map<string, ChorusState>();

/** A stable snapshot for before the client exists (useSyncExternalStore compares by identity). */
function initialState(key: string): ChorusState {
  let state = initialStates.get(key);
  if (!state) {
    state = {
      ...EMPTY_CONVERSATION,
      connection: { state: 'connecting', url: key.split(' ')[0] ?? '', attempt: 0 },
      outbox: [],
    };
    initialStates.clear();
    initialStates.set(key, state);
  }
  return state;
}
