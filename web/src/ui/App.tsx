// The root component.
export function App() {
  return <h1>Sotto</h1>;
}
