/** s matched literally inside a RegExp (paths and object keys in the messages tests expect). */
export const literally = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
