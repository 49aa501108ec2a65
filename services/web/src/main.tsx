import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { gatewayUrls } from './gateway-urls.js';
import './styles.css';

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App urls={gatewayUrls(window.location)} />
    </StrictMode>,
  );
}
