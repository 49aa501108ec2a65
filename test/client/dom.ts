import { Window } from 'happy-dom';

/**
 * A DOM for React in this Node test process: happy-dom's Window, installed as the browser
 * globals React and the client look for (`window`, `document`, and `addEventListener` on the
 * global object, as in a browser where globalThis is the window).
 *
 * Not vitest's happy-dom environment: that one also replaces globals such as URL, which breaks
 * the test cluster's file URLs.
 */
export function installDom() {
  const window = new Window({ url: 'http://localhost/' });
  const g = globalThis as Record<string, unknown>;
  const names = ['window', 'document', 'addEventListener', 'removeEventListener'];
  const saved = new Map(names.map((name) => [name, g[name]]));
  g.window = window;
  g.document = window.document;
  g.addEventListener = window.addEventListener.bind(window);
  g.removeEventListener = window.removeEventListener.bind(window);
  return {
    window,
    async restore() {
      for (const [name, value] of saved) {
        if (value === undefined) delete g[name];
        else g[name] = value;
      }
      await window.happyDOM.close();
    },
  };
}
