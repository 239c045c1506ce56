// The browser client's entry: renders the root component into #app.
import { render } from "preact";
import { App } from "./ui/App";

const root = document.getElementById("app");
if (root) render(<App />, root);
