// Stylesheets imported for their side effect (esbuild bundles them into the page CSS).
declare module "*.css";
