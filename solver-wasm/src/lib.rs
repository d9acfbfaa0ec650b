pub use pow;
